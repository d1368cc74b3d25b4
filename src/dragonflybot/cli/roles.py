"""``dragonflybot feed``, ``dragonflybot aggregate`` and the gateway's ``--bus``: roles over Redis.

    dragonflybot feed --config deploy.toml --venues binance          # one process per venue set
    dragonflybot feed --config deploy.toml --venues bitstamp
    dragonflybot aggregate --config deploy.toml                      # merges, publishes books
    dragonflybot-grpc-server --config deploy.toml --bus              # a gateway (replicas welcome)

Every process reads the same file (its ``[bus]`` table, instruments and venues);
``--bus URL`` overrides ``[bus].url``. The roles and their links are
``dragonflybot.app_roles``; this module only turns flags into ``Roles``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

import msgspec

from dragonflybot.app_roles import Role, Roles, run_roles
from dragonflybot.cli import options
from dragonflybot.cli.common import OneLineParser, fail, serve_main
from dragonflybot.cli.simulated import AppRunner
from dragonflybot.config import AppConfig, BusSettings
from dragonflybot.errors import ConfigError, DragonflybotError


def bus_settings(config: AppConfig, url: str | None) -> BusSettings:
    """The file's ``[bus]`` (defaults if absent) with ``--bus URL`` applied."""
    settings = config.bus if config.bus is not None else BusSettings()
    if url:
        settings = msgspec.structs.replace(settings, url=url)
    return settings


def role_runner(roles: Roles) -> AppRunner:
    """``run_roles`` with this process's roles bound: what ``serve_main`` runs."""
    return functools.partial(run_roles, roles=roles)


def add_bus_flag(parser: argparse.ArgumentParser, *, optional_url: bool = False) -> None:
    optional = {"nargs": "?", "const": ""} if optional_url else {}
    parser.add_argument(
        "--bus",
        **optional,  # type: ignore[arg-type]
        metavar="URL",
        help="the Redis bus, redis://HOST:PORT or redis+cluster://HOST:PORT "
        "(default: the config's [bus].url"
        + (
            "); with --bus this server is a gateway: instead of running feeds it serves "
            "the consolidated books an aggregator publishes on the bus, and the ladder and "
            "FIX (when configured) from the feeds' views there"
            if optional_url
            else ")"
        ),
    )


def _role_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=description)
    options.add_version_flag(parser)
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--instrument",
        "--instrument-name",
        dest="instrument",
        type=options.instrument_name,
        metavar="NAME",
        help="run this instrument only, BASE-QUOTE such as ETH-BTC (selected from --config "
        "if listed there)",
    )
    add_bus_flag(parser)
    options.add_log_level_flag(parser, None)
    options.add_observability_flags(parser)
    return parser


def _base_config(args: argparse.Namespace, *, simulate: bool = False) -> AppConfig:
    return options.build_config(
        config_path=args.config,
        instrument=args.instrument,
        venues=None,
        depth=None,
        listen=None,
        simulate=simulate,
        log_level=args.log_level,
        log_format=args.log_format,
        metrics_listen=args.metrics_listen,
    )


def feed_parser(prog: str = "dragonflybot feed") -> argparse.ArgumentParser:
    parser = _role_parser(
        prog,
        "Run venue feeds and publish each venue's book per instrument to the bus, "
        "with heartbeats while a venue is quiet.",
    )
    parser.add_argument(
        "--venues",
        type=options.venue_list,
        help="comma-separated venues this process runs, of the config's (default: all); "
        "run the others in other feed processes",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="connect to simulated venues started in this process instead of the real ones",
    )
    return parser


def feed_main(argv: Sequence[str]) -> int:
    prog = "dragonflybot feed"
    args = feed_parser(prog).parse_args(argv)
    try:
        config = _base_config(args, simulate=args.simulate)
        venues = frozenset(args.venues) if args.venues is not None else None
        roles = Roles(frozenset({Role.FEED}), bus_settings(config, args.bus), venues)
    except DragonflybotError as exc:
        return fail(prog, exc)
    return serve_main(prog, lambda: config, runner=role_runner(roles))


def aggregate_parser(prog: str = "dragonflybot aggregate") -> argparse.ArgumentParser:
    return _role_parser(
        prog,
        "Subscribe to the venues' books on the bus, merge them and publish the "
        "consolidated book of each instrument.",
    )


def aggregate_main(argv: Sequence[str]) -> int:
    prog = "dragonflybot aggregate"
    args = aggregate_parser(prog).parse_args(argv)
    try:
        config = _base_config(args)
        roles = Roles(frozenset({Role.AGGREGATE}), bus_settings(config, args.bus))
    except DragonflybotError as exc:
        return fail(prog, exc)
    return serve_main(prog, lambda: config, runner=role_runner(roles))


def gateway_roles(config: AppConfig, url: str, *, simulate: bool) -> Roles:
    """``dragonflybot-grpc-server --bus [URL]``: the serve role alone."""
    if simulate:
        raise ConfigError("--simulate runs venue feeds: a gateway (--bus) has none")
    return Roles(frozenset({Role.SERVE}), bus_settings(config, url))
