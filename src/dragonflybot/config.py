"""Typed configuration: a TOML file decoded straight into msgspec Structs.

An unknown key or a value of the wrong type is an error naming the key
(msgspec's message carries the path, e.g. ``$.venues[0].mode``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Final, Literal

import msgspec

from dragonflybot.errors import ConfigError
from dragonflybot.fix.config import FixConfig, check_fix_config
from dragonflybot.instrument import canonical

Mode = Literal["top", "depth"]
"""How a feed keeps its venue's book:

* ``top``: the venue's top-N stream, each message a whole top N (Binance ``depth20``,
  Bitstamp ``order_book``); nothing to sync;
* ``depth``: the full-depth book, synced from a snapshot (REST or the stream's own)
  and kept by the stream's updates.
"""

RENAMED_MODES: Final[Mapping[str, Mode]] = MappingProxyType({"snapshot": "top", "diff": "depth"})
"""The old mode names (``snapshot`` also named the REST book fetched in ``diff`` mode)."""

log = logging.getLogger("dragonflybot.config")


def renamed_mode(old: str, where: str) -> Mode:
    """The new name of a deprecated mode value, with a logged deprecation warning."""
    new = RENAMED_MODES[old]
    log.warning(
        "%s: mode = %r is deprecated, write mode = %r (the same behaviour)",
        where,
        old,
        new,
        extra={"deprecated": old, "replacement": new},
    )
    return new


class VenueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One venue feed. ``None`` URLs/symbol mean the venue module's production default."""

    name: str
    mode: Mode = "top"
    ws_url: str | None = None
    rest_url: str | None = None
    symbol: str | None = None
    depth: Annotated[int, msgspec.Meta(ge=1, le=5000)] | None = None
    stale_after: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    backoff_base: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    backoff_cap: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    ack_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds the venue has to acknowledge the subscription."""
    rest_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds one REST snapshot request may take."""
    dead_after: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """Silence after which the connection is presumed dead and reopened (at least stale_after)."""
    healthy_after: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    """A connection that stayed up this long resets the reconnect backoff."""
    jwt: str | None = None
    """A venue token sent with the subscriptions (Coinbase: a CDP API key's JWT; public
    market data needs none). Never logged; venues that take none ignore it."""
    price_precision: Annotated[int, msgspec.Meta(ge=0, le=18)] | None = None
    """Decimals of the pair's prices, for a checksum over formatted values (Kraken v2);
    ``None``: the venue publishes it (Kraken's ``instrument`` channel)."""
    qty_precision: Annotated[int, msgspec.Meta(ge=0, le=18)] | None = None
    """Decimals of the pair's quantities (set with ``price_precision``)."""

    def __post_init__(self) -> None:
        # Python callers may still pass the old names (files are rewritten on decode).
        mode: str = self.mode
        if mode in RENAMED_MODES:
            msgspec.structs.force_setattr(self, "mode", renamed_mode(mode, f"venue {self.name!r}"))
        elif mode not in ("top", "depth"):
            raise ConfigError(f"venue {self.name!r}: mode must be 'top' or 'depth', got {mode!r}")


# --- the application: instruments, their venues and listen addresses ----------------------

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]
Depth = Annotated[int, msgspec.Meta(ge=1, le=250)]
"""Consolidated levels per side. Capped so one Summary stays far below the gRPC message limit."""

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DEPTH = 10


class InstrumentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One consolidated book: its own feeds and aggregator, optionally its own gRPC address.

    ``BookSummary`` takes no argument, so the Keyrock service streams one instrument
    per address (the first listening there); the ``dragonflybot.v1`` API serves
    every instrument on every address. ``None`` fields take the file's top-level
    defaults.
    """

    name: Annotated[str, msgspec.Meta(min_length=2, max_length=41)]
    """``BASE-QUOTE`` (``ETH-BTC``), or the compact ``ethbtc``; ``check_config`` makes it
    canonical (``dragonflybot.instrument``)."""
    depth: Depth | None = None
    liquidity_depth: Depth | None = None
    """Prices per side of the aggregated-liquidity ladder (second aggregator); None: the default."""
    listen: str | None = None
    """An address of its own, whose Keyrock ``BookSummary`` streams this instrument;
    ``None``: the top-level ``listen`` (the API address)."""
    venues: list[VenueConfig] | None = None


class SimulationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Run the venue simulator in-process and point every feed at it (``--simulate``)."""

    seed: int = 1
    rate: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    """Book updates per second per venue and instrument."""


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What one gRPC server grants its clients (``[limits]``; docs/security.md says why).

    The defaults fit the service: requests are ``Empty`` or a health check, a client
    needs one connection and a handful of streams, and a connection that opens no
    stream has nothing to wait for.
    """

    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    """Open connections per server; past it a new one gets GOAWAY and is closed at once."""
    max_streams_per_connection: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """Concurrent streams per connection (SETTINGS); the excess is refused (REFUSED_STREAM)."""
    max_receive_message: Annotated[int, msgspec.Meta(ge=64, le=4 * 1024 * 1024)] = 4096
    """Bytes in one request message; more is RESOURCE_EXHAUSTED."""
    max_header_list: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 8192
    """Bytes of one request's headers (SETTINGS_MAX_HEADER_LIST_SIZE), and of its encoded
    header block (HEADERS + CONTINUATION)."""
    control_frame_rate: Annotated[float, msgspec.Meta(gt=0)] = 200.0
    """PING, SETTINGS, PRIORITY, WINDOW_UPDATE and empty frames per second per connection
    (plus two per DATA frame the server sent: a WINDOW_UPDATE each for the stream and the
    connection); past the burst: GOAWAY ENHANCE_YOUR_CALM."""
    control_frame_burst: Annotated[int, msgspec.Meta(ge=1)] = 200
    reset_rate: Annotated[float, msgspec.Meta(gt=0)] = 50.0
    """Streams a client may reset (RST_STREAM) or have refused per second, after the burst;
    more is a rapid-reset attack (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM."""
    reset_burst: Annotated[int, msgspec.Meta(ge=1)] = 100
    handshake_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    """Seconds from accept to the client's preface and SETTINGS."""
    idle_timeout: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 60.0
    """Seconds a connection may stay without an open stream before GOAWAY and close."""
    request_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    """Seconds a stream gets to send its (single) request message after its headers."""
    keepalive_interval: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 30.0
    """Seconds a connection may be silent (no frame received) before the server sends
    an HTTP/2 PING to find out whether the client is still there."""
    keepalive_timeout: Annotated[float, msgspec.Meta(gt=0, le=3_600)] = 20.0
    """Seconds the client has to answer that PING; then the connection is closed (a dead
    client's streams and slot are freed)."""


class TlsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[tls]``: serve gRPC over TLS (every instrument's server; docs/security.md)."""

    cert_file: str
    """PEM certificate chain of the server (leaf first)."""
    key_file: str
    """PEM private key of ``cert_file`` (unencrypted)."""
    client_ca_file: str | None = None
    """PEM CA certificates: when set, every client must present a certificate they
    signed (mutual TLS); ``None``: client certificates are not asked for."""


class AuthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[auth]``: require ``authorization: Bearer <token>`` on every call but health."""

    token_file: str
    """File holding the token (one line; surrounding whitespace ignored)."""


class BusSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The Redis bus between the roles (``[bus]``; docs/scaling.md).

    Read only by the processes started as roles (``dragonflybot feed``, ``dragonflybot
    aggregate``, ``dragonflybot-grpc-server --bus``): a plain server ignores it, so one
    file describes the whole deployment.
    """

    url: str = "redis://127.0.0.1:6379"
    """``redis://HOST:PORT[/DB]``, ``rediss://`` (TLS) or ``redis+cluster://HOST:PORT``."""
    prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "dfb"
    """Leads every Redis key and channel name, so deployments can share one Redis."""
    stale_after: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 3.0
    """Seconds without a view or heartbeat from a venue (aggregator), or without a book from
    the aggregator (gateway), before it counts as stale and leaves the merge / the service."""
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    """Seconds between a feed process's heartbeats per venue (below ``stale_after``)."""
    refresh_after: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    """Seconds after which an aggregator republishes an unchanged book (below
    ``stale_after``): how gateways tell a quiet market from a dead aggregator."""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    """Deadline (s) on every Redis wait: connect, command, subscribe."""
    backoff_cap: Annotated[float, msgspec.Meta(gt=0, le=300)] = 2.0
    """Longest wait (s) between reconnect attempts after Redis goes away."""


class AppConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole process. Top-level ``depth``/``venues`` are defaults for every instrument."""

    instruments: list[InstrumentConfig] = msgspec.field(default_factory=list)
    listen: str | None = None
    """The API address (``None``: ``DEFAULT_LISTEN``): ``dragonflybot.v1`` for every
    instrument, reflection, health and the Keyrock ``BookSummary`` of the first
    instrument without a ``listen`` of its own. Bound when an instrument has no
    ``listen`` of its own or this is set."""
    depth: Depth = DEFAULT_DEPTH
    venues: list[VenueConfig] | None = None
    """Default feeds of every instrument; ``None``: every registered venue
    (``venues.registry.VENUES``) with default settings."""
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    """``text``: one ``key=value`` line per event; ``json``: one JSON object per line."""
    metrics_listen: str | None = None
    """``HOST:PORT`` to serve Prometheus metrics on (``/metrics``); ``None``: not served."""
    max_client_rate: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Summaries per second per gRPC stream at most (newer states conflate while a stream
    waits); 0: no cap, every stream gets each state it can take. Bounds what many clients
    cost the one core the feeds and the aggregator share."""
    simulation: SimulationConfig | None = None
    liquidity_depth: Depth | None = None
    """Default ladder depth of every instrument; None: no ladder, unless ``[fix]`` is set
    (then the instrument's ``depth``)."""
    fix: FixConfig | None = None
    """The FIX 4.4 market-data acceptor (``[fix]``, docs/fix.md); None: not served."""
    shutdown_grace: Annotated[float, msgspec.Meta(gt=0, le=10)] = 1.0
    """Seconds streams get to end with a status before the rest is cancelled."""
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    """What each gRPC server grants its clients (connections, streams, sizes, rates)."""
    tls: TlsConfig | None = None
    """TLS for the gRPC servers; ``None``: plaintext (h2c)."""
    auth: AuthConfig | None = None
    """Bearer-token authentication for the gRPC servers; ``None``: none."""
    bus: BusSettings | None = None
    """The Redis bus for multi-process deployments; ``None``: one process, no bus."""


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Read and validate a TOML file; every problem is a ``ConfigError`` naming the key."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {os.fspath(path)!r}: {exc.strerror}") from exc
    return decode_config(data, source=os.fspath(path))


def decode_config(data: bytes | str, *, source: str = "<config>") -> AppConfig:
    """Decode TOML text into an ``AppConfig`` and check what types alone cannot.

    Deprecated mode names (``snapshot``, ``diff``) are rewritten with a logged warning
    naming the key before the values are validated.
    """
    try:
        raw = msgspec.toml.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _rename_modes(raw, source)
    try:
        config = msgspec.convert(raw, type=AppConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_name_key(str(exc))}") from exc
    return check_config(config, source=source)


def _rename_modes(raw: object, source: str) -> None:
    """Rewrite ``mode = "snapshot"/"diff"`` in every venue table of a decoded file."""
    if not isinstance(raw, dict):
        return
    tables: list[tuple[str, object]] = [("venues", raw.get("venues"))]
    instruments = raw.get("instruments")
    if isinstance(instruments, list):
        tables += [
            (f"instruments[{i}].venues", inst.get("venues"))
            for i, inst in enumerate(instruments)
            if isinstance(inst, dict)
        ]
    for key, venues in tables:
        if not isinstance(venues, list):
            continue
        for j, venue in enumerate(venues):
            if isinstance(venue, dict) and venue.get("mode") in RENAMED_MODES:
                venue["mode"] = renamed_mode(venue["mode"], f"{source}: {key}[{j}].mode")


def check_config(config: AppConfig, *, source: str = "<config>") -> AppConfig:
    """Cross-field rules: canonical instrument names (``ETH-BTC``), unique names and
    addresses, parseable listen addresses."""
    names: set[str] = set()
    try:
        api = parse_listen(config.listen or DEFAULT_LISTEN)
    except ConfigError as exc:
        raise ConfigError(f"{source}: listen: {exc}") from None
    listens: dict[tuple[str, int], str] = {}
    if api_bound(config):
        listens[api] = "the gRPC API (listen)"
    explicit: dict[tuple[str, int], str] = {}
    instruments: list[InstrumentConfig] = []
    for i, inst in enumerate(config.instruments):
        key = f"instruments[{i}]"
        try:
            name = canonical(inst.name)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {key}.name: {exc}") from None
        if name != inst.name:
            inst = msgspec.structs.replace(inst, name=name)
        instruments.append(inst)
        if inst.name in names:
            raise ConfigError(f"{source}: {key}.name: instrument {inst.name!r} appears twice")
        names.add(inst.name)
        if inst.listen is not None:
            try:
                address = parse_listen(inst.listen)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {key}.listen: {exc}") from None
            if address[1] != 0 and address in explicit:
                raise ConfigError(
                    f"{source}: {key}.listen: {format_listen(*address)} is already used by "
                    f"instrument {explicit[address]!r}"
                )
            explicit[address] = inst.name
            listens.setdefault(address, f"instrument {inst.name!r}")
        _check_venues(inst.venues or (), f"{source}: {key}.venues")
    if config.metrics_listen is not None:
        try:
            address = parse_listen(config.metrics_listen)
        except ConfigError as exc:
            raise ConfigError(f"{source}: metrics_listen: {exc}") from None
        if address[1] != 0 and address in listens:
            raise ConfigError(
                f"{source}: metrics_listen: {format_listen(*address)} is already used by "
                f"{listens[address]}"
            )
    _check_venues(config.venues or (), f"{source}: venues")
    if config.bus is not None:
        _check_bus(config.bus, f"{source}: bus")
    if config.fix is not None:
        try:
            check_fix_config(config.fix)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        address = parse_listen(config.fix.listen)
        if address[1] != 0 and address in listens:
            raise ConfigError(
                f"{source}: fix.listen: {format_listen(*address)} is already used by "
                f"{listens[address]}"
            )
    if instruments != config.instruments:
        config = msgspec.structs.replace(config, instruments=instruments)
    return config


def _check_bus(bus: BusSettings, where: str) -> None:
    """The intervals that keep a live role from looking stale."""
    for key in ("heartbeat_interval", "refresh_after"):
        if not getattr(bus, key) < bus.stale_after:
            raise ConfigError(
                f"{where}.{key}: must be below stale_after ({bus.stale_after:g} s), "
                f"got {getattr(bus, key):g}"
            )


def api_bound(config: AppConfig) -> bool:
    """Whether the API address (top-level ``listen``) is served: set, or needed by an
    instrument without an address of its own."""
    return config.listen is not None or any(i.listen is None for i in config.instruments)


def _check_venues(venues: Sequence[VenueConfig], where: str) -> None:
    seen: set[str] = set()
    for j, venue in enumerate(venues):
        if venue.name in seen:
            raise ConfigError(f"{where}[{j}].name: venue {venue.name!r} appears twice")
        seen.add(venue.name)


def _name_key(message: str) -> str:
    """Lead with the key: msgspec ends its message with ``- at `$.instruments[0].depth```."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        text, path = message, "$`"
    key = path.rstrip("`").removeprefix("$").removeprefix(".")
    unknown = _UNKNOWN_FIELD.fullmatch(text)
    if unknown:
        key = f"{key}.{unknown[1]}" if key else unknown[1]
        text = "unknown key"
    return f"{key or '(top level)'}: {text}"


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.+)`")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> ``(host, port)``; port 0 picks a free port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"bad listen address {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"bad listen address {text!r}: write IPv6 hosts as [ADDR]:PORT")
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"bad listen address {text!r}: empty or malformed host")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"bad listen address {text!r}: port must be 0-65535")
    return host, int(port_text)


def format_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
