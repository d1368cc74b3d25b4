"""``dragonflybot-grpc-client``: watch the consolidated book of a dragonflybot server.

    dragonflybot-grpc-client --instrument ETH-BTC          # live table on a terminal
    dragonflybot-grpc-client --count 5 --format json       # five JSON lines, then exit
    dragonflybot-grpc-client --server 10.0.0.5:50051 --retry
    dragonflybot-grpc-client --server gw1:50051,gw2:50051 --retry   # gateways tried in turn

With ``--instrument`` it streams that instrument through ``dragonflybot.v1`` (falling
back to the Keyrock ``BookSummary`` on a server without it); without, the Keyrock
stream of the address's default instrument. Speaks gRPC through purerpc with a small
flow-control window and keeps only the newest book for the display. An unreachable
server is one line on stderr and exit 1; ``--retry`` keeps trying with backoff
instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.cli import options, security_flags
from dragonflybot.cli.common import EXIT_OK, OneLineParser, run, setup_logging, until_signal
from dragonflybot.cli.display import print_json_lines, show_live_table
from dragonflybot.config import DEFAULT_LISTEN, format_listen, parse_listen
from dragonflybot.service.book_client import ReceivedSummary, follow_any_book
from dragonflybot.service.channel import ChannelSecurity

PROG = "dragonflybot-grpc-client"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Watch the consolidated order book streamed by a dragonflybot server.",
    )
    options.add_version_flag(parser)
    parser.add_argument(
        "--server",
        type=_servers,
        action="extend",
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"server address (default: {DEFAULT_LISTEN}); several (comma-separated or the "
        "flag repeated) are gateways serving the same book, tried in turn: when one fails "
        "the client moves to the next at once",
    )
    parser.add_argument(
        "--count",
        type=_count,
        default=0,
        metavar="N",
        help="stop after N books, in either format (default: 0, never)",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        help="table (live, for terminals) or json (one line per book); "
        "default: table on a terminal, json otherwise",
    )
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        type=options.instrument_name,
        metavar="NAME",
        help="stream this instrument (BASE-QUOTE such as ETH-BTC; compact ethbtc accepted) "
        "through dragonflybot.v1; on a server without v1, the Keyrock BookSummary labelled "
        "with it (default: the Keyrock BookSummary of the address's default instrument)",
    )
    parser.add_argument(
        "--retry", action="store_true", help="keep reconnecting (with backoff) instead of failing"
    )
    parser.add_argument(
        "--connect-timeout",
        type=options.seconds,
        default=5.0,
        metavar="S",
        help="seconds to connect (default: 5)",
    )
    options.add_log_level_flag(parser, "WARNING")
    options.add_observability_flags(parser, metrics=False)
    security_flags.add_client_flags(parser)
    return parser


def _servers(text: str) -> list[str]:
    return [options.listen_address(part.strip()) for part in text.split(",")]


def _count(text: str) -> int:
    return options.checked_number(
        text,
        int,
        lambda value: value >= 0,
        malformed="bad count {text!r}: expected an integer",
        invalid="count must be >= 0",
    )


async def follow_and_show(
    host: str,
    port: int,
    *,
    alternates: Sequence[tuple[str, int]] = (),
    table: bool,
    count: int = 0,
    retry: bool = False,
    connect_timeout: float = 5.0,
    instrument: str | None = None,
    security: ChannelSecurity | None = None,
) -> None:
    """Follow the stream and display it until ``count`` books (0: until cancelled).

    Raises ``TransportError`` (inside an exception group) when the server cannot be
    reached or the stream ends, unless ``retry``. ``alternates`` serve the same book:
    tried in turn after ``host:port`` (``follow_any_book``).
    """
    books: Fanout[ReceivedSummary] = Fanout()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: follow_any_book(
                [(host, port), *alternates],
                books,
                retry=retry,
                connect_timeout=connect_timeout,
                instrument=instrument,
                security=security,
            )
        )
        if table:
            servers = ", ".join(format_listen(*server) for server in [(host, port), *alternates])
            await show_live_table(books, count, servers, instrument=instrument)
        else:
            await print_json_lines(books, count, instrument=instrument)
        nursery.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    servers = [parse_listen(text) for text in dict.fromkeys(args.server or [DEFAULT_LISTEN])]
    (host, port), alternates = servers[0], servers[1:]
    table = args.format == "table" if args.format else sys.stdout.isatty()
    setup_logging(args.log_level, args.log_format or "text")

    async def watch() -> int:
        """Follow and show until done or SIGINT/SIGTERM (both a normal end: exit 0)."""
        security = security_flags.client_security(args)
        await until_signal(
            lambda: follow_and_show(
                host,
                port,
                alternates=alternates,
                table=table,
                count=args.count,
                retry=args.retry,
                connect_timeout=args.connect_timeout,
                instrument=args.instrument,
                security=security,
            )
        )
        return EXIT_OK

    try:
        return run(PROG, watch)
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): nothing left to do.
        return EXIT_OK
