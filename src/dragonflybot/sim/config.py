"""Configuration of an in-process simulation and the endpoints it reports back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs
import msgspec

from dragonflybot.errors import ConfigError
from dragonflybot.instrument import parse_instrument
from dragonflybot.sim.faults import NO_FAULTS, Faults
from dragonflybot.sim.instruments import InstrumentSpec, instrument_spec
from dragonflybot.sim.market import MarketParams
from dragonflybot.venues import registry
from dragonflybot.venues.spec import VenueSpec

VENUES: Final = tuple(registry.VENUES)
"""The venues simulated by default: every registered venue."""

WsBackend = Literal["trio-websocket", "wsproto"]


@attrs.frozen
class Endpoints:
    """Where a simulated venue listens.

    ``ws_url`` is what a feed connects to (the venue's ``SimVenue.ws_path`` on the
    listener, e.g. Binance's combined-stream endpoint ``ws://HOST:PORT/stream``);
    ``rest_url`` is the REST base the feed appends its snapshot path to.
    """

    ws_url: str
    rest_url: str


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to simulate. Invalid values raise ``ConfigError`` on construction."""

    venues: tuple[str, ...] = VENUES
    instruments: tuple[str, ...] = ("ethbtc",)
    """Compact names (``ethbtc``); canonical ones (``ETH-BTC``) are made compact."""
    seed: int = 1
    rate: float = 20.0
    """Market updates per second per venue and instrument (each is one diff frame)."""
    rates: dict[str, float] = {}
    """Per-venue override of ``rate``."""
    host: str = "127.0.0.1"
    ports: dict[str, int] = {}
    """WebSocket port per venue; 0 or absent = an ephemeral port."""
    rest_ports: dict[str, int] = {}
    depth: int = 200
    """Levels per side of each simulated book."""
    market: MarketParams = MarketParams()
    """Order-flow shape (its ``depth`` is replaced by ``depth`` above)."""
    tick_sizes: dict[str, str] = {}
    """Per-instrument price tick override, e.g. ``{"ethbtc": "0.000001"}``."""
    lot_sizes: dict[str, str] = {}
    """Per-instrument amount lot override, e.g. ``{"ethbtc": "0.0001"}``."""
    faults: dict[str, Faults] = {}
    stamp_send_time: bool = False
    """Add ``"T_send_ns"`` (``time.time_ns()`` at send) to every data payload."""
    start_paused: bool = False
    """Start with the market frozen (``SimHandle.resume`` starts it): lets a test subscribe
    before the first update, so it sees every message from the first."""
    epoch_ns: int | None = None
    """Unix time (ns) of the simulation start, the origin of all message timestamps;
    ``None`` = the wall clock at start. Fix it (and the seed) for identical messages."""
    ws_backend: WsBackend = "trio-websocket"
    """``wsproto``: the lean server path that writes a whole batch of frames in one
    socket write (for benchmarks); ``trio-websocket``: one write per frame."""
    batch_interval: float = 0.001
    """Least time between two wakes of the market driver: updates due meanwhile are
    generated and written as one batch."""
    max_pending: int = 100_000
    """Frames queued for one connection before it is dropped as a slow consumer."""
    replay: tuple[str, ...] = ()
    """Capture files to serve instead of the market model (dragonflybot captures or the
    ``recv_time: frame`` line format); the venues served are those found in them."""
    speed: float = 1.0
    """Replay pace as a multiple of the recorded pace."""
    as_fast_as_possible: bool = False
    """Replay with no pacing: as fast as each client reads."""
    replay_settle: float = 0.05
    """Delay between a replay client's first subscription and the start of playback, so
    the subscriptions it sends back to back all take effect first."""

    def __post_init__(self) -> None:
        if any(sep in name for name in self.instruments for sep in "-/_"):
            # ETH-BTC -> ethbtc: the simulator keys its markets by the compact name.
            compact = tuple(parse_instrument(name).compact for name in self.instruments)
            msgspec.structs.force_setattr(self, "instruments", compact)
        if not self.venues and not self.replay:
            raise ConfigError("no venue to simulate")
        if len(set(self.venues)) != len(self.venues):
            raise ConfigError("a venue is listed twice")
        if not self.instruments:
            raise ConfigError("no instrument to simulate")
        if len(set(self.instruments)) != len(self.instruments):
            raise ConfigError("an instrument is listed twice")
        for name in (*self.tick_sizes, *self.lot_sizes):
            if name not in self.instruments:
                raise ConfigError(f"tick/lot size given for {name!r}, which is not simulated")
        for name in self.instruments:
            self.spec(name)
        for rate in (self.rate, *self.rates.values()):
            if not rate > 0:
                raise ConfigError(f"rate must be > 0, got {rate}")
        for port in (*self.ports.values(), *self.rest_ports.values()):
            if not 0 <= port <= 65535:
                raise ConfigError(f"port {port} is out of range")
        if not 1 <= self.depth <= 5000:
            raise ConfigError(f"depth must be in 1..5000, got {self.depth}")
        if not self.speed > 0:
            raise ConfigError(f"speed must be > 0, got {self.speed}")
        if self.batch_interval < 0 or self.replay_settle < 0:
            raise ConfigError("batch_interval and replay_settle must be >= 0")
        if self.max_pending < 1:
            raise ConfigError("max_pending must be >= 1")

    def check_venues(self, known: Mapping[str, VenueSpec]) -> None:
        """``ConfigError`` unless every venue named here is one of ``known``.

        Not part of construction: which venues exist is the caller's ``venues`` mapping
        (``serve_simulation``'s parameter, the registry by default)."""
        for venue in (*self.venues, *self.rates, *self.ports, *self.rest_ports, *self.faults):
            if venue not in known:
                raise ConfigError(f"unknown venue {venue!r} (known: {', '.join(known)})")

    def spec(self, instrument: str) -> InstrumentSpec:
        """The instrument's grid, with this configuration's tick and lot overrides."""
        return instrument_spec(
            instrument, tick=self.tick_sizes.get(instrument), lot=self.lot_sizes.get(instrument)
        )

    def market_params(self) -> MarketParams:
        return msgspec.structs.replace(self.market, depth=self.depth)

    def rate_for(self, venue: str) -> float:
        return self.rates.get(venue, self.rate)

    def faults_for(self, venue: str) -> Faults:
        return self.faults.get(venue, NO_FAULTS)
