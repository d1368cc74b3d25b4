"""``dragonflybot-grpc-server``: serve the consolidated book of one or more instruments.

    dragonflybot-grpc-server --instrument ETH-BTC            # real venues
    dragonflybot-grpc-server --instrument ETH-BTC --simulate # local simulated venues
    dragonflybot-grpc-server --config examples/two-instruments.toml
    dragonflybot-grpc-server --config deploy.toml --bus redis://redis:6379  # a gateway
    dragonflybot-grpc-server --instrument ETH-BTC \
        --venue-url binance=ws://127.0.0.1:9001 --venue-url bitstamp=ws://127.0.0.1:9002
                                                             # a standalone `dragonflybot sim`

Runs until SIGINT or SIGTERM, then ends every stream with a gRPC status and
exits 0. Usage mistakes print one line and exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dragonflybot.app import plan_topology
from dragonflybot.cli import options, security_flags
from dragonflybot.cli.common import OneLineParser, fail, serve_main
from dragonflybot.cli.roles import add_bus_flag, gateway_roles, role_runner
from dragonflybot.config import DEFAULT_LISTEN, AppConfig
from dragonflybot.errors import ConfigError, DragonflybotError
from dragonflybot.venues.registry import VENUES

PROG = "dragonflybot-grpc-server"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Stream the consolidated order book of crypto venues over gRPC: "
        "dragonflybot.v1 (every instrument on one address), the Keyrock "
        "orderbook.OrderbookAggregator/BookSummary, health and reflection.",
    )
    options.add_version_flag(parser)
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        type=options.instrument_name,
        metavar="NAME",
        help="instrument to serve, BASE-QUOTE such as ETH-BTC (compact ethbtc accepted); "
        "selects it from --config if listed there",
    )
    parser.add_argument(
        "--venues",
        type=options.venue_list,
        help=f"comma-separated venues (default: every registered venue, {','.join(VENUES)})",
    )
    parser.add_argument(
        "--venue-url",
        type=options.venue_url,
        action="append",
        metavar="NAME=URL",
        help="connect venue NAME to URL instead of its production endpoint: ws:// or wss:// "
        "for its WebSocket, http:// or https:// for its REST base (repeatable; e.g. the "
        "URLs a standalone 'dragonflybot sim' prints)",
    )
    parser.add_argument(
        "--depth",
        type=options.depth,
        help="consolidated levels per side, 1-250 (default: 10, or the config's depth)",
    )
    parser.add_argument(
        "--listen",
        type=options.listen_address,
        metavar="HOST:PORT",
        help="the gRPC API address: dragonflybot.v1 for every instrument, and the Keyrock "
        f"BookSummary of a single instrument (default: {DEFAULT_LISTEN}, or the config's listen)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run simulated venues in-process instead of connecting to the real ones",
    )
    parser.add_argument(
        "--client-max-rate",
        type=options.client_rate,
        metavar="N",
        help="at most N Summaries per second per client stream, newer books conflating "
        "meanwhile (default: 0, no cap)",
    )
    parser.add_argument(
        "--max-connections",
        type=options.max_connections,
        metavar="N",
        help="gRPC client connections served at once per gRPC address, more are refused "
        "with GOAWAY (default: 512; the other limits are in the config's [limits] table)",
    )
    options.add_log_level_flag(parser, None)
    options.add_observability_flags(parser)
    security_flags.add_server_flags(parser)
    options.add_fix_flags(parser)
    add_bus_flag(parser, optional_url=True)
    return parser


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """Flags and file -> validated config; raises ``ConfigError``."""
    config = options.build_config(
        config_path=args.config,
        instrument=args.instrument,
        venues=args.venues,
        depth=args.depth,
        listen=args.listen,
        simulate=args.simulate,
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_listen=args.metrics_listen,
        max_client_rate=args.client_max_rate,
        max_connections=args.max_connections,
        fix_listen=args.fix_listen,
        liquidity_depth=args.liquidity_depth,
        venue_urls=args.venue_url or (),
    )
    config = security_flags.apply_server_flags(config, args)
    plan_topology(config)
    return config


def check_gateway_flags(args: argparse.Namespace) -> None:
    """A gateway (``--bus``) takes its depths from the file, as every role does.

    The feed processes publish views as deep as the file's ``depth`` and
    ``liquidity_depth`` (``InstrumentPlan.feed_depth``); a deeper ladder on one
    gateway's command line would sum views cut short and understate the totals
    at its deep end, and a deeper book would promise levels nobody publishes.
    """
    for flag, value in (("--depth", args.depth), ("--liquidity-depth", args.liquidity_depth)):
        if value is not None:
            raise ConfigError(
                f"{flag} with --bus: a gateway's depths are the config file's, which the "
                "feed and aggregate processes read too"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bus is None:
        return serve_main(PROG, lambda: config_from_args(args))
    try:
        check_gateway_flags(args)
        config = config_from_args(args)
        roles = gateway_roles(config, args.bus, simulate=config.simulation is not None)
    except DragonflybotError as exc:
        return fail(PROG, exc)
    return serve_main(PROG, lambda: config, runner=role_runner(roles))
