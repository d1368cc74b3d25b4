"""docs/deploy/compose.yaml's role commands are the real CLI's, on examples/deployment.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dragonflybot.app import plan_topology
from dragonflybot.app_roles import Role, bus_config, check_feed_venues
from dragonflybot.cli import roles, server
from dragonflybot.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docs" / "deploy" / "compose.yaml"


def commands() -> dict[str, list[str]]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    out = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        entry = service.get("entrypoint", ["dragonflybot"])
        args = [a.replace("/config/", f"{ROOT}/examples/") for a in service["command"]]
        out[name] = [*entry, *args]
    return out


def test_every_role_command_parses_and_plans() -> None:
    found: dict[str, set[Role]] = {}
    for name, argv in commands().items():
        if argv[0] == "dragonflybot-grpc-server":
            args = server.build_parser().parse_args(argv[1:])
            config = server.config_from_args(args)
            assert args.bus is not None, f"{name}: a gateway needs --bus"
            chosen = roles.gateway_roles(config, args.bus, simulate=False)
        else:
            assert argv[0] == "dragonflybot"
            role, rest = argv[1], argv[2:]
            parser = roles.feed_parser() if role == "feed" else roles.aggregate_parser()
            args = parser.parse_args(rest)
            config = load_config(args.config)
            if role == "feed" and args.venues:
                check_feed_venues(plan_topology(config), args.venues)
            chosen = roles.Roles(
                frozenset({Role(role)}),
                roles.bus_settings(config, args.bus),
                frozenset(args.venues) if role == "feed" and args.venues else None,
            )
        assert bus_config(chosen.bus).url == "redis://redis:6379"
        found[name] = set(chosen.roles)
    assert found == {
        "feed-binance": {Role.FEED},
        "feed-bitstamp": {Role.FEED},
        "aggregate": {Role.AGGREGATE},
        "gateway": {Role.SERVE},
    }
