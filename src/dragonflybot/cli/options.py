"""From command-line flags (and an optional config file) to one ``AppConfig``.

Flags override the file. ``--instrument`` selects that instrument from the
file (or adds it with the file's defaults); ``--venues`` and ``--depth`` then
apply to the selected instruments; ``--listen`` sets the API address (top-level
``listen``), where a single selected instrument is then served. The result is validated
exactly like a file, so a flag value and a file value fail the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Final, TypeVar, get_args

import msgspec

from dragonflybot.app import default_feeds, plan_topology
from dragonflybot.config import (
    AppConfig,
    InstrumentConfig,
    LogLevel,
    SimulationConfig,
    VenueConfig,
    check_config,
    load_config,
    parse_listen,
)
from dragonflybot.errors import ConfigError
from dragonflybot.fix.config import FixConfig
from dragonflybot.instrument import canonical
from dragonflybot.venues.registry import lookup

N = TypeVar("N", int, float)

LOG_LEVELS: Final[tuple[str, ...]] = get_args(LogLevel)


def version() -> str:
    """The installed distribution's version (``unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("dragonflybot")
    except metadata.PackageNotFoundError:
        return "unknown"


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )


def add_log_level_flag(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--log-level``, one of ``LOG_LEVELS`` in any case: every entrypoint the same."""
    shown = default or "INFO, or the config file's log_level"
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=default,
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default: {shown})",
    )


def seconds(text: str) -> float:
    """A duration or timeout: a finite number of seconds > 0 (not NaN, not negative)."""
    return checked_number(
        text,
        float,
        lambda value: value > 0 and math.isfinite(value),
        malformed="bad duration {text!r}: expected a number of seconds",
        invalid="bad duration {text}: expected a number of seconds > 0",
    )


def rate(text: str) -> float:
    """Updates per second: a finite number > 0."""
    return checked_number(
        text,
        float,
        lambda value: value > 0 and math.isfinite(value),
        malformed="bad rate {text!r}: expected a number of updates per second",
        invalid="bad rate {text}: expected a number > 0",
    )


def instrument_name(text: str) -> str:
    """``--instrument``: any spelling ``parse_instrument`` takes, made canonical (``ETH-BTC``)."""
    try:
        return canonical(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"bad {exc}") from None


def venue_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("no venue given")
    for name in names:
        try:
            lookup(name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a venue is listed twice in {text!r}")
    return names


def listen_address(text: str) -> str:
    try:
        parse_listen(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def venue_url(text: str) -> tuple[str, str]:
    """``--venue-url NAME=URL``: ``ws://``/``wss://`` is the venue's WebSocket endpoint,
    ``http://``/``https://`` its REST base (give both as two flags)."""
    name, sep, url = text.partition("=")
    name = name.strip().lower()
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"bad venue URL {text!r}: expected NAME=URL")
    try:
        lookup(name)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    scheme = url.partition("://")[0].lower()
    if scheme not in ("ws", "wss", "http", "https") or "://" not in url:
        raise argparse.ArgumentTypeError(
            f"bad venue URL {url!r}: expected ws://, wss:// (WebSocket) or http://, https:// (REST)"
        )
    return name, url


def apply_venue_urls(
    venues: list[VenueConfig], urls: Sequence[tuple[str, str]]
) -> list[VenueConfig]:
    """``venues`` with the URLs of ``--venue-url`` set (by scheme: WebSocket or REST)."""
    out = []
    for venue in venues:
        for name, url in urls:
            if name == venue.name:
                key = "ws_url" if url.lower().startswith("ws") else "rest_url"
                venue = msgspec.structs.replace(venue, **{key: url})
        out.append(venue)
    return out


def add_fix_flags(parser: argparse.ArgumentParser) -> None:
    """``--fix-listen`` and ``--liquidity-depth``: the FIX acceptor and the ladder."""
    parser.add_argument(
        "--fix-listen",
        type=listen_address,
        metavar="HOST:PORT",
        help="serve FIX 4.4 market data on HOST:PORT (docs/fix.md; default: off; "
        "port 0 picks a free port, which is logged)",
    )
    parser.add_argument(
        "--liquidity-depth",
        type=depth,
        metavar="N",
        help="prices per side of the aggregated-liquidity ladder (default: the depth "
        "when FIX is served, else no ladder)",
    )


def add_observability_flags(parser: argparse.ArgumentParser, *, metrics: bool = True) -> None:
    """``--log-format`` (and ``--metrics-listen``): shared by the server, the demo, the client."""
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text: one key=value line per event (default); json: one JSON object per line",
    )
    if metrics:
        parser.add_argument(
            "--metrics-listen",
            type=listen_address,
            metavar="HOST:PORT",
            help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off; "
            "port 0 picks a free port, which is logged)",
        )


def depth(text: str) -> int:
    return checked_number(
        text,
        int,
        lambda value: 1 <= value <= 250,
        malformed="bad depth {text!r}: expected an integer",
        invalid="bad depth {value}: expected 1-250",
    )


def client_rate(text: str) -> float:
    return checked_number(
        text,
        float,
        lambda value: value >= 0 and math.isfinite(value),
        malformed="bad rate {text!r}: expected a number of Summaries per second",
        invalid="bad rate {value}: expected a number >= 0 (0: no cap)",
    )


def max_connections(text: str) -> int:
    return checked_number(
        text,
        int,
        lambda value: 1 <= value <= 100_000,
        malformed="bad connection limit {text!r}: expected a whole number",
        invalid="bad connection limit {value}: expected 1 to 100000",
    )


def checked_number(
    text: str,
    convert: Callable[[str], N],
    valid: Callable[[N], bool],
    *,
    malformed: str,
    invalid: str,
) -> N:
    """The body of a numeric argparse ``type=``: every CLI's numbers fail the same one-line way.

    ``malformed`` and ``invalid`` are ``str.format`` templates given ``text`` and ``value``.
    """
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(malformed.format(text=text)) from None
    if not valid(value):
        raise argparse.ArgumentTypeError(invalid.format(text=text, value=value))
    return value


def _canonical_or_none(name: str) -> str | None:
    """The canonical name, or ``None`` (``check_config`` reports a bad one with its key)."""
    try:
        return canonical(name)
    except ConfigError:
        return None


def build_config(
    *,
    config_path: str | None,
    instrument: str | None,
    venues: tuple[str, ...] | None,
    depth: int | None,
    listen: str | None,
    simulate: bool,
    log_level: str | None,
    log_format: str | None = None,
    metrics_listen: str | None = None,
    max_client_rate: float | None = None,
    max_connections: int | None = None,
    fix_listen: str | None = None,
    liquidity_depth: int | None = None,
    venue_urls: Sequence[tuple[str, str]] = (),
) -> AppConfig:
    """The file's config (or the defaults) with the flags applied and validated."""
    base = load_config(config_path) if config_path else AppConfig()
    instruments = list(base.instruments)
    if instrument is not None:
        wanted = _canonical_or_none(instrument)
        chosen = [i for i in instruments if _canonical_or_none(i.name) == wanted]
        instruments = chosen or [InstrumentConfig(name=instrument)]
    if not instruments:
        raise ConfigError("missing instrument: pass --instrument or a --config with one")
    if venues is not None:
        known = {v.name: v for v in base.venues or ()}
        for inst in instruments:
            known.update({v.name: v for v in inst.venues or ()})
        picked = [known.get(name, VenueConfig(name=name)) for name in venues]
        instruments = [msgspec.structs.replace(i, venues=picked) for i in instruments]
    if depth is not None:
        instruments = [msgspec.structs.replace(i, depth=depth) for i in instruments]
    changes: dict[str, object] = {}
    if venue_urls:
        used = {
            v.name
            for i in instruments
            for v in (i.venues if i.venues is not None else default_feeds(base))
        }
        for name, url in venue_urls:
            if name not in used:
                raise ConfigError(
                    f"--venue-url {name}={url}: {name!r} is not a venue of the served "
                    f"instruments ({', '.join(sorted(used))})"
                )
        changes["venues"] = apply_venue_urls(default_feeds(base), venue_urls)
        instruments = [
            i
            if i.venues is None
            else msgspec.structs.replace(i, venues=apply_venue_urls(i.venues, venue_urls))
            for i in instruments
        ]
    if listen is not None:
        # The API address; a single instrument is served there (its own address dropped).
        changes["listen"] = listen
        if len(instruments) == 1:
            instruments = [msgspec.structs.replace(instruments[0], listen=None)]
    changes["instruments"] = instruments
    if simulate and base.simulation is None:
        changes["simulation"] = SimulationConfig()
    if log_level is not None:
        changes["log_level"] = log_level
    if log_format is not None:
        changes["log_format"] = log_format
    if metrics_listen is not None:
        changes["metrics_listen"] = metrics_listen
    if max_client_rate is not None:
        changes["max_client_rate"] = max_client_rate
    if max_connections is not None:
        changes["limits"] = msgspec.structs.replace(base.limits, max_connections=max_connections)
    if fix_listen is not None:
        fix = base.fix if base.fix is not None else FixConfig()
        changes["fix"] = msgspec.structs.replace(fix, listen=fix_listen)
    if liquidity_depth is not None:
        changes["liquidity_depth"] = liquidity_depth
    config = msgspec.structs.replace(base, **changes)
    config = check_config(config, source="command line")
    try:
        plan_topology(config)  # venue names: the registry is the app's to consult
    except ConfigError as exc:
        raise ConfigError(f"{config_path or 'command line'}: {exc}") from None
    return config
