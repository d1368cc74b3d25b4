"""``dragonflybot``: one command for everything (``make demo`` runs ``dragonflybot demo``).

dragonflybot demo [--duration S] [--instrument ETH-BTC] [--seed N]
dragonflybot server ...    (same as dragonflybot-grpc-server)
dragonflybot client ...    (same as dragonflybot-grpc-client)
dragonflybot health ...    is a server SERVING? (exit 0 when it is)
dragonflybot feed ...      venue feeds publishing to the bus (docs/scaling.md)
dragonflybot aggregate ... the merge between the bus's venue books and its consolidated books
dragonflybot sim ...       simulated venues only
dragonflybot record ...    capture a venue's traffic
dragonflybot --version
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from dragonflybot.cli.common import EXIT_OK, EXIT_USAGE

PROG = "dragonflybot"


def _demo(argv: list[str]) -> int:
    from dragonflybot.cli.demo import main

    return main(argv)


def _server(argv: list[str]) -> int:
    from dragonflybot.cli.server import main

    return main(argv)


def _client(argv: list[str]) -> int:
    from dragonflybot.cli.client import main

    return main(argv)


def _health(argv: list[str]) -> int:
    from dragonflybot.cli.health import main

    return main(argv)


def _sim(argv: list[str]) -> int:
    from dragonflybot.cli.sim import sim_main

    return sim_main(argv)


def _feed(argv: list[str]) -> int:
    from dragonflybot.cli.roles import feed_main

    return feed_main(argv)


def _aggregate(argv: list[str]) -> int:
    from dragonflybot.cli.roles import aggregate_main

    return aggregate_main(argv)


def _record(argv: list[str]) -> int:
    from dragonflybot.cli.sim import record_main

    return record_main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (_demo, "simulated venues + server + client, offline"),
    "server": (_server, "serve the consolidated book over gRPC (= dragonflybot-grpc-server)"),
    "client": (_client, "watch a server's book, table or JSON (= dragonflybot-grpc-client)"),
    "health": (_health, "ask a server whether it is SERVING (exit 0 when it is)"),
    "sim": (_sim, "run simulated venues"),
    "record": (_record, "capture a venue's traffic to a file"),
    "feed": (_feed, "run venue feeds, publish their books to the bus (Redis)"),
    "aggregate": (_aggregate, "merge the venues' books from the bus, publish the result"),
}


def usage() -> str:
    lines = [f"usage: {PROG} COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", f"'{PROG} COMMAND --help' describes each command; '{PROG} --version'."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    if args[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    if args[0] == "--version":
        from dragonflybot.cli.options import version

        print(f"{PROG} {version()}")
        return EXIT_OK
    command = COMMANDS.get(args[0])
    if command is None:
        known = ", ".join(COMMANDS)
        print(f"{PROG}: error: unknown command {args[0]!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    return command[0](args[1:])
