"""``dragonflybot-grpc-server``: serve the consolidated book of one or more instruments.

    dragonflybot-grpc-server --instrument-name ethbtc            # real venues
    dragonflybot-grpc-server --instrument-name ethbtc --simulate # local simulated venues
    dragonflybot-grpc-server --config examples/two-instruments.toml
    dragonflybot-grpc-server --config deploy.toml --bus redis://redis:6379  # a gateway

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
from dragonflybot.errors import DragonflybotError
from dragonflybot.venues.registry import VENUES

PROG = "dragonflybot-grpc-server"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Stream the consolidated order book of crypto venues over gRPC "
        "(orderbook.OrderbookAggregator/BookSummary, plus grpc.health.v1.Health).",
    )
    parser.add_argument(
        "--instrument-name",
        type=options.instrument_name,
        help="instrument to serve, e.g. ethbtc (selects it from --config if listed there)",
    )
    parser.add_argument(
        "--venues",
        type=options.venue_list,
        help=f"comma-separated venues (default: every registered venue, {','.join(VENUES)})",
    )
    parser.add_argument(
        "--depth", type=options.depth, help="consolidated levels per side (default: 10)"
    )
    parser.add_argument(
        "--listen",
        type=options.listen_address,
        metavar="HOST:PORT",
        help=f"gRPC listen address (default: {DEFAULT_LISTEN})",
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
        help="gRPC client connections served at once per instrument, more are refused "
        "with GOAWAY (default: 512; the other limits are in the config's [limits] table)",
    )
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, help="default: INFO")
    options.add_observability_flags(parser)
    security_flags.add_server_flags(parser)
    add_bus_flag(parser, optional_url=True)
    return parser


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """Flags and file -> validated config; raises ``ConfigError``."""
    config = options.build_config(
        config_path=args.config,
        instrument=args.instrument_name,
        venues=args.venues,
        depth=args.depth,
        listen=args.listen,
        simulate=args.simulate,
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_listen=args.metrics_listen,
        max_client_rate=args.client_max_rate,
        max_connections=args.max_connections,
    )
    config = security_flags.apply_server_flags(config, args)
    plan_topology(config)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bus is None:
        return serve_main(PROG, lambda: config_from_args(args))
    try:
        config = config_from_args(args)
        roles = gateway_roles(config, args.bus, simulate=config.simulation is not None)
    except DragonflybotError as exc:
        return fail(PROG, exc)
    return serve_main(PROG, lambda: config, runner=role_runner(roles))
