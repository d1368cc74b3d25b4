"""``dragonflybot demo``: simulated venues, the server and a client, in one process.

Everything runs on this machine (no network needed): the simulator serves
Binance's and Bitstamp's real protocols on local ports, the feeds and the
aggregator run exactly as in production, the gRPC server listens on a free
local port, and a client watches the stream through gRPC, as any other would.
Runs until Ctrl-C or ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dragonflybot.app import App
from dragonflybot.cli import options
from dragonflybot.cli.client import follow_and_show
from dragonflybot.cli.common import OneLineParser, serve_main
from dragonflybot.config import (
    AppConfig,
    InstrumentConfig,
    SimulationConfig,
    VenueConfig,
    check_config,
    format_listen,
)
from dragonflybot.errors import TransportError
from dragonflybot.fix.config import FixConfig
from dragonflybot.metrics import METRICS_PATH
from dragonflybot.venues.registry import VENUES

PROG = "dragonflybot demo"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Simulated venues, the server and a client in one process, offline: "
        "the consolidated book of the simulated Binance and Bitstamp, live.",
    )
    options.add_version_flag(parser)
    parser.add_argument(
        "--duration",
        type=options.seconds,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        type=options.instrument_name,
        default="ETH-BTC",
        metavar="NAME",
        help="the simulated instrument, BASE-QUOTE (default: ETH-BTC)",
    )
    parser.add_argument("--seed", type=int, default=1, help="market simulation seed (default: 1)")
    parser.add_argument(
        "--rate",
        type=options.rate,
        default=20.0,
        help="updates per second per venue, > 0 (default: 20)",
    )
    parser.add_argument(
        "--depth",
        type=options.depth,
        default=10,
        help="consolidated levels per side, 1-250 (default: 10)",
    )
    parser.add_argument(
        "--listen",
        type=options.listen_address,
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="gRPC address (default: a free local port; it is logged)",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        help="default: table on a terminal, json otherwise",
    )
    options.add_log_level_flag(parser, "WARNING")
    options.add_observability_flags(parser)
    options.add_fix_flags(parser)
    return parser


def demo_config(args: argparse.Namespace) -> AppConfig:
    return check_config(
        AppConfig(
            listen=args.listen,
            instruments=[InstrumentConfig(name=args.instrument, depth=args.depth)],
            # Every venue, full depth: the demo exercises full-depth books and their sync.
            venues=[VenueConfig(name=name, mode="depth") for name in VENUES],
            simulation=SimulationConfig(seed=args.seed, rate=args.rate),
            log_level=args.log_level,
            log_format=args.log_format or "text",
            metrics_listen=args.metrics_listen,
            fix=FixConfig(listen=args.fix_listen) if args.fix_listen else None,
            liquidity_depth=args.liquidity_depth,
        ),
        source="demo",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table = args.format == "table" if args.format else sys.stdout.isatty()

    async def client(app: App) -> None:
        runtime = next(iter(app.instruments.values()))
        print(f"demo: {runtime.name} served on {runtime.address}", file=sys.stderr)
        if app.metrics_address is not None:
            where = format_listen(*app.metrics_address)
            print(f"demo: metrics on http://{where}{METRICS_PATH}", file=sys.stderr)
        if app.fix_server is not None:
            where = format_listen(app.fix_server.host, app.fix_server.port)
            print(
                f"demo: FIX 4.4 acceptor on {where} (log on as SenderCompID=CLIENT, "
                "TargetCompID=DRAGONFLY; docs/fix.md)",
                file=sys.stderr,
            )
        try:
            await follow_and_show(
                runtime.plan.host, runtime.port, table=table, instrument=runtime.name
            )
        except* TransportError:
            # The server ending our stream is how a shutdown looks from the client.
            if not app.stopping:
                raise

    return serve_main(PROG, lambda: demo_config(args), duration=args.duration, companion=client)
