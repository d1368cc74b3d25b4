"""``dragonflybot sim`` and ``dragonflybot record``: the simulator and recorder as commands.

Both return an exit code instead of exiting, so the ``dragonflybot`` dispatcher and tests
call them directly. Bad arguments or configuration print one line and return 2; Ctrl-C or
SIGTERM ends a run cleanly with 0.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TextIO

import msgspec
import trio

from dragonflybot.cli.common import run_unwrapped, until_signal
from dragonflybot.cli.options import (
    add_version_flag,
    checked_number,
    instrument_name,
    seconds,
)
from dragonflybot.config import format_listen
from dragonflybot.errors import ConfigError, DragonflybotError
from dragonflybot.sim import Faults, SimConfig, SimHandle, serve_simulation
from dragonflybot.sim.config import VENUES
from dragonflybot.sim.record import RecordOptions, RecordStats, record


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _positive_float(text: str) -> float:
    return checked_number(
        text,
        float,
        lambda value: value > 0,
        malformed="not a number: {text!r}",
        invalid="must be > 0: {text!r}",
    )


def _venue_depth(text: str) -> int:
    return checked_number(
        text,
        int,
        lambda value: 1 <= value <= 5000,
        malformed="bad depth {text!r}: expected an integer",
        invalid="bad depth {value}: expected 1-5000 (levels per side of a venue book)",
    )


def _port(text: str) -> int:
    return checked_number(
        text,
        int,
        lambda value: 0 <= value <= 65535,
        malformed="not a port: {text!r}",
        invalid="port out of range: {text!r}",
    )


def _sim_parser() -> _Parser:
    parser = _Parser(
        prog="dragonflybot sim",
        description=f"Run simulated venues ({', '.join(VENUES)}), or replay a capture, and "
        "print their endpoints (for dragonflybot-grpc-server --venue-url); serve until Ctrl-C.",
    )
    add_version_flag(parser)
    parser.add_argument(
        "--venue", action="append", choices=VENUES, help="repeatable (default: every venue)"
    )
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        action="append",
        type=instrument_name,
        metavar="NAME",
        help="BASE-QUOTE such as ETH-BTC, repeatable (default: ETH-BTC)",
    )
    parser.add_argument("--seed", type=int, default=1, help="market seed (default: 1)")
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=20.0,
        help="market updates per second per venue and instrument (default: 20)",
    )
    parser.add_argument(
        "--depth",
        type=_venue_depth,
        default=200,
        help="levels per side of each simulated venue book, 1-5000 (default: 200)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    for venue in VENUES:
        for flag, what in ((f"--port-{venue}", "WebSocket"), (f"--rest-port-{venue}", "REST")):
            parser.add_argument(
                flag,
                type=_port,
                default=0,
                metavar="PORT",
                help=f"{venue} {what} port (default: ephemeral)",
            )
    parser.add_argument(
        "--replay",
        action="append",
        metavar="FILE",
        help="serve a capture or a line-format recording (repeatable)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=_positive_float, default=1.0, help="replay pace multiple (default: 1)"
    )
    pace.add_argument(
        "--as-fast-as-possible", action="store_true", help="replay as fast as each client reads"
    )
    parser.add_argument(
        "--stamp-send-time", action="store_true", help='add "T_send_ns" to every data payload'
    )
    parser.add_argument(
        "--ws-backend",
        choices=("trio-websocket", "wsproto"),
        default="trio-websocket",
        help="default: trio-websocket",
    )
    parser.add_argument(
        "--duration", type=seconds, help="stop after this many seconds (default: Ctrl-C)"
    )
    _add_fault_flags(parser)
    return parser


def _fault_flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _add_fault_flags(parser: _Parser) -> None:
    """One flag per ``Faults`` field, each taking ``[VENUE=]VALUE`` (repeatable): without a
    venue it applies to every simulated venue, ``bitstamp=2`` to that venue only."""
    group = parser.add_argument_group(
        "faults",
        "misbehaviour of the simulated venues (sim.faults.Faults); each flag takes "
        "[VENUE=]VALUE and may be repeated, e.g. --gap-every bitstamp=2 --malformed-every 40",
    )
    for field in msgspec.structs.fields(Faults):
        boolean = field.type is bool
        group.add_argument(
            _fault_flag(field.name),
            dest=f"fault_{field.name}",
            action="append",
            nargs="?" if boolean else None,
            const="true" if boolean else None,
            metavar="[VENUE=]" + ("BOOL" if boolean else "VALUE"),
            help=_FAULT_HELP.get(field.name),
        )


_FAULT_HELP: Final = {
    "drop_after": "close each connection after N messages",
    "drop_probability": "chance of closing after each data frame (0..1)",
    "gap_every": "omit every Nth diff frame (a sequence gap; on Bitstamp a lost diff)",
    "malformed_every": "make every Nth message garbage",
    "stall_after": "after N messages send nothing for --stall-seconds",
    "stall_seconds": "length of a stall",
    "reconnect_after": "after N messages ask the client to reconnect",
    "reconnect_grace": "seconds between the reconnect notice and the close",
    "reject_subscriptions": "answer every subscription with the venue's error",
    "max_frames_per_second": "throttle each connection to this many frames per second",
    "quiet_market": "the venue's market stands still (a quiet product; connections stay open)",
    "restart_every": "publish every Nth update as the venue's service-restart message "
    "(Bybit: a snapshot with u == 1)",
    "corrupt_book_every": "alter a level in every Nth book frame, keeping the venue's checksum",
    "fault_instrument": "limit --gap-every and --corrupt-book-every to this instrument",
}


def faults_from_args(args: argparse.Namespace, venues: tuple[str, ...]) -> dict[str, Faults]:
    """Per venue, the ``Faults`` the fault flags describe; ``ConfigError`` naming the flag."""
    settings: dict[str, dict[str, str]] = {}
    for field in msgspec.structs.fields(Faults):
        for item in getattr(args, f"fault_{field.name}", None) or ():
            if field.type is bool and item in venues:
                item = f"{item}=true"  # --reject-subscriptions bitstamp
            venue, sep, value = item.rpartition("=")
            if sep and venue not in venues:
                raise ConfigError(
                    f"{_fault_flag(field.name)} {item}: {venue!r} is not simulated here "
                    f"(simulated: {', '.join(venues)})"
                )
            for name in (venue,) if sep else venues:
                settings.setdefault(name, {})[field.name] = value
    faults: dict[str, Faults] = {}
    for venue, values in settings.items():
        try:
            faults[venue] = msgspec.convert(values, Faults, strict=False)
        except msgspec.ValidationError as exc:
            text, _, path = str(exc).rpartition(" - at `$.")
            flag = _fault_flag(path.rstrip("`")) if path else "fault flag"
            raise ConfigError(f"{flag} ({venue}): {text or exc}") from None
    return faults


def _record_parser() -> _Parser:
    parser = _Parser(
        prog="dragonflybot record",
        description="Record a venue's raw frames (and REST snapshot) to a capture file.",
    )
    add_version_flag(parser)
    parser.add_argument("--venue", required=True, choices=VENUES)
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        required=True,
        type=instrument_name,
        metavar="NAME",
        help="BASE-QUOTE such as ETH-BTC (compact ethbtc accepted)",
    )
    parser.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="FILE",
        help="capture file (appended to if it exists)",
    )
    parser.add_argument("--mode", choices=("depth", "top"), default="depth", help="default: depth")
    parser.add_argument("--ws-url", help="default: the venue's production endpoint")
    parser.add_argument("--rest-url", help="default: the venue's production REST base")
    parser.add_argument(
        "--duration", type=seconds, help="stop after this many seconds (default: Ctrl-C)"
    )
    parser.add_argument(
        "--count",
        type=_frame_count,
        help="stop after this many received frames, >= 1 (default: no limit)",
    )
    return parser


def _frame_count(text: str) -> int:
    return checked_number(
        text,
        int,
        lambda value: value >= 1,
        malformed="bad count {text!r}: expected an integer",
        invalid="bad count {value}: expected >= 1",
    )


def _parse(parser: _Parser, argv: list[str], err: TextIO) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=err)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0


def _run_trio(
    run: Callable[[], Awaitable[None]], duration: float | None
) -> DragonflybotError | None:
    """Run ``run`` until it returns, ``duration`` passes, or SIGINT/SIGTERM arrives; the first
    of our own errors that ended it, or None. Anything else is a bug and propagates."""

    async def bounded() -> None:
        with trio.move_on_after(duration if duration is not None else float("inf")):
            await run()

    try:
        run_unwrapped(lambda: until_signal(bounded))
    except DragonflybotError as exc:
        return exc
    return None


def sim_config_from_args(args: argparse.Namespace) -> SimConfig:
    ports = {v: getattr(args, f"port_{v}") for v in VENUES if getattr(args, f"port_{v}")}
    rest_ports = {
        v: getattr(args, f"rest_port_{v}") for v in VENUES if getattr(args, f"rest_port_{v}")
    }
    venues = tuple(dict.fromkeys(args.venue or VENUES))
    return SimConfig(
        venues=venues,
        faults=faults_from_args(args, venues),
        instruments=tuple(dict.fromkeys(args.instrument or ["ETH-BTC"])),
        seed=args.seed,
        rate=args.rate,
        depth=args.depth,
        host=args.host,
        ports=ports,
        rest_ports=rest_ports,
        replay=tuple(args.replay or ()),
        speed=args.speed,
        as_fast_as_possible=args.as_fast_as_possible,
        stamp_send_time=args.stamp_send_time,
        ws_backend=args.ws_backend,
    )


def _check_ports_free(config: SimConfig) -> None:
    """Each port asked for by flag can be bound, else a ``ConfigError`` naming it: the
    simulator's own bind error says which host but not which of a venue's ports."""
    asked = [(venue, "WebSocket", port) for venue, port in config.ports.items()]
    asked += [(venue, "REST", port) for venue, port in config.rest_ports.items()]
    for venue, what, port in asked:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc
                raise ConfigError(
                    f"{venue} {what}: cannot listen on {format_listen(config.host, port)}: {reason}"
                ) from None


def sim_main(argv: list[str]) -> int:
    """``dragonflybot sim ...``: serve simulated venues until Ctrl-C; returns the exit code."""
    parsed = _parse(_sim_parser(), argv, sys.stderr)
    if isinstance(parsed, int):
        return parsed
    try:
        config = sim_config_from_args(parsed)
        _check_ports_free(config)
    except ConfigError as exc:
        print(f"dragonflybot sim: error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            handle: SimHandle = await nursery.start(serve_simulation, config)
            for venue, endpoints in handle.endpoints.items():
                print(f"{venue}\tws_url={endpoints.ws_url}\trest_url={endpoints.rest_url}")
            sys.stdout.flush()

    error = _run_trio(run, parsed.duration)
    if error is not None:
        print(f"dragonflybot sim: error: {error}", file=sys.stderr)
        return 2
    return 0


def record_main(argv: list[str]) -> int:
    """``dragonflybot record ...``: capture a venue's traffic; returns the exit code."""
    parsed = _parse(_record_parser(), argv, sys.stderr)
    if isinstance(parsed, int):
        return parsed
    existed = os.path.exists(parsed.output)
    size = os.path.getsize(parsed.output) if existed else 0
    options = RecordOptions(
        venue=parsed.venue,
        instrument=parsed.instrument,
        output=parsed.output,
        mode=parsed.mode,
        ws_url=parsed.ws_url,
        rest_url=parsed.rest_url,
        duration=parsed.duration,
        count=parsed.count,
    )
    stats = RecordStats()

    async def run() -> None:
        await record(options, stats=stats)

    error = _run_trio(run, None)
    if error is not None and stats.frames == 0:
        # Nothing recorded: leave no header-only capture behind (or the file as it was).
        _restore(parsed.output, existed, size)
    if isinstance(error, ConfigError):
        print(f"dragonflybot record: error: {error}", file=sys.stderr)
        return 2
    if error is not None:
        print(f"dragonflybot record: error: {error}", file=sys.stderr)
        return 1
    print(f"recorded {stats.frames} frames and {stats.rest} REST snapshots to {options.output}")
    return 0


def _restore(path: str, existed: bool, size: int) -> None:
    """Undo a failed recording's writes: remove the file it created, or cut an existing
    one back to its size before (captures are appended to)."""
    try:
        if existed:
            os.truncate(path, size)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        print(f"dragonflybot record: cannot clean up {path!r}: {exc.strerror}", file=sys.stderr)
