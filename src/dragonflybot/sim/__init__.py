"""Simulated venues: local servers speaking each registered venue's real protocol.

The real feed code runs against them unchanged — only the endpoint URLs differ — so the
demo, the end-to-end tests and the benchmarks need no network. Each venue publishes a
seeded stochastic order book (``market``) or replays a capture (``replay``), with optional
faults (``faults``).

In-process API (used by ``--simulate``, the demo, end-to-end tests and benchmarks)::

    config = SimConfig(venues=("binance", "bitstamp"), instruments=("ethbtc",), seed=7)
    async with trio.open_nursery() as nursery:
        sim: SimHandle = await nursery.start(serve_simulation, config)
        sim.endpoints["binance"].ws_url    # "ws://127.0.0.1:PORT/stream"
        sim.endpoints["bitstamp"].rest_url  # "http://127.0.0.1:PORT2"
        sim.pause()                         # freeze the market...
        await sim.flushed()                 # ...let queued frames reach the clients
        sim.published("binance", "ethbtc").top_bids(10)   # what clients must converge to
        sim.set_faults("bitstamp", Faults(drop_after=100))
        nursery.cancel_scope.cancel()

- ``serve_simulation(config, *, task_status)`` binds every venue's WebSocket and REST
  listeners (ephemeral ports by default), then ``task_status.started(handle)``; it serves
  until cancelled.
- ``SimHandle.endpoints: Mapping[str, Endpoints]`` — per venue, ``ws_url`` (the listener
  plus the venue's ``SimVenue.ws_path``: Binance ``ws://H:P/stream``, Bitstamp
  ``ws://H:P``) and ``rest_url`` (``http://H:P2``).
- Each venue is served by the ``SimVenue`` (``sim.plugin``) its ``VenueSpec.sim`` names;
  ``serve_simulation(config, venues=...)`` takes another venue mapping than the registry.
- ``SimHandle.book(venue, instrument)`` — the simulator's current book (what REST serves);
  ``SimHandle.published(venue, instrument)`` — the book as of the last frame actually
  written to a client. Both offer ``top_bids(n)`` / ``top_asks(n)``, best first.
- ``SimHandle.set_faults(venue, faults)`` / ``faults(venue)`` — change misbehaviour live.
- ``SimHandle.pause()`` / ``resume()`` / ``advance(n)`` — freeze the market, and step it by
  hand while frozen; ``await SimHandle.flushed()`` waits until every queued frame is written.
- ``SimHandle.frames_sent(venue)`` / ``connections(venue)`` — counters.

Other ``SimConfig`` knobs: ``rate`` (updates/s per venue and instrument, each one diff frame),
``depth``, ``market`` (``MarketParams``: order-flow shape), ``tick_sizes``/``lot_sizes``,
``faults`` per venue, ``stamp_send_time`` (adds ``"T_send_ns"`` to every data payload, for
latency measurements), ``ws_backend="wsproto"`` (one socket write per batch of frames, for
benchmarks), ``replay`` (capture files to serve instead of the model) with ``speed`` or
``as_fast_as_possible``, ``ports``/``rest_ports`` for fixed ports.

Message timestamps start at ``SimConfig.epoch_ns`` and follow trio's clock while the market
runs (they stand still while it is paused); with a fixed seed and epoch the message sequence
is identical on every run. ``SimConfig(start_paused=True)`` lets a client subscribe before the
first update.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

import msgspec
import trio

from dragonflybot.core.book import Side
from dragonflybot.errors import ConfigError
from dragonflybot.instrument import parse_instrument
from dragonflybot.sim.config import Endpoints, SimConfig
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.market import FairPrice, MarketParams
from dragonflybot.sim.model_server import ModelVenueServer
from dragonflybot.sim.plugin import SimVenue, load_sim_venue
from dragonflybot.sim.replay import replay_servers
from dragonflybot.sim.venue_server import VenueServer
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec

__all__ = [
    "BookReader",
    "Endpoints",
    "Faults",
    "MarketParams",
    "SimConfig",
    "SimHandle",
    "SimVenue",
    "serve_simulation",
]


class BookReader(Protocol):
    """Read access to a book, best levels first."""

    def top_bids(self, n: int) -> Side: ...

    def top_asks(self, n: int) -> Side: ...


class SimHandle:
    """Control of a running simulation (returned by ``serve_simulation``)."""

    def __init__(self, servers: Mapping[str, VenueServer], endpoints: Mapping[str, Endpoints]):
        self._servers = dict(servers)
        self.endpoints: Mapping[str, Endpoints] = MappingProxyType(dict(endpoints))

    @property
    def venues(self) -> tuple[str, ...]:
        return tuple(self._servers)

    def _server(self, venue: str) -> VenueServer:
        try:
            return self._servers[venue]
        except KeyError:
            raise ConfigError(f"venue {venue!r} is not simulated here") from None

    def _model(self, venue: str) -> ModelVenueServer:
        server = self._server(venue)
        if not isinstance(server, ModelVenueServer):
            raise ConfigError(f"venue {venue!r} replays a capture: it has no market model")
        return server

    def _check_instrument(self, server: ModelVenueServer, instrument: str) -> str:
        """The simulator's (compact) name of ``instrument``, given either way."""
        if instrument not in server.markets:
            try:
                compact = parse_instrument(instrument).compact
            except ConfigError:
                compact = ""
            if compact not in server.markets:
                raise ConfigError(f"instrument {instrument!r} is not simulated on {server.venue}")
            return compact
        return instrument

    def book(self, venue: str, instrument: str) -> BookReader:
        """The simulator's current book (REST snapshots serve exactly this); ``instrument``
        canonical (``ETH-BTC``) or compact (``ethbtc``)."""
        server = self._model(venue)
        return server.book(self._check_instrument(server, instrument))

    def published(self, venue: str, instrument: str) -> BookReader:
        """The book as of the last update written to any client: what a correct client
        converges to once the queued frames are delivered."""
        server = self._model(venue)
        return server.published(self._check_instrument(server, instrument))

    def faults(self, venue: str) -> Faults:
        return self._server(venue).faults

    def set_faults(self, venue: str, faults: Faults) -> None:
        """Apply ``faults`` to ``venue`` from its next frame on (one-shot faults fire anew)."""
        self._server(venue).set_faults(faults)

    def pause(self) -> None:
        """Stop generating market updates (queued frames are still delivered)."""
        for server in self._servers.values():
            if isinstance(server, ModelVenueServer):
                server.pause()

    def resume(self) -> None:
        for server in self._servers.values():
            if isinstance(server, ModelVenueServer):
                server.resume()

    @property
    def paused(self) -> bool:
        models = [s for s in self._servers.values() if isinstance(s, ModelVenueServer)]
        return bool(models) and all(s.paused for s in models)

    def advance(self, updates: int = 1) -> None:
        """Generate ``updates`` market updates per venue and instrument now (e.g. while
        paused, for step-by-step tests)."""
        for server in self._servers.values():
            if isinstance(server, ModelVenueServer):
                server.advance(updates)

    async def flushed(self) -> None:
        """Until every frame queued so far has been written to its client."""
        for server in self._servers.values():
            await server.flushed()

    def frames_sent(self, venue: str) -> int:
        """Messages written to clients of ``venue`` so far (all kinds)."""
        return self._server(venue).frames_sent

    def connections(self, venue: str) -> int:
        """Clients currently connected to ``venue``."""
        return len(self._server(venue).connections)


async def serve_simulation(
    config: SimConfig,
    *,
    venues: Mapping[str, VenueSpec] = VENUES,
    task_status: trio.TaskStatus[SimHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the simulated venues of ``config`` until cancelled.

    ``venues`` is every venue that may be simulated (the registry's, by default; a test
    passes its own): each is served by the ``SimVenue`` its spec names. Binds every
    listener first, then reports a ``SimHandle``. Raises ``ConfigError`` for a venue not
    in ``venues``, a listener that cannot be bound or a replay file that cannot be read.
    """
    config.check_venues(venues)
    if config.epoch_ns is None:
        config = msgspec.structs.replace(config, epoch_ns=time.time_ns())
    servers: dict[str, VenueServer]
    if config.replay:
        servers = dict(replay_servers(config, venues))
    else:
        fairs = {name: FairPrice(config.seed, config.spec(name)) for name in config.instruments}
        servers = {
            venue: ModelVenueServer(venue, load_sim_venue(venues[venue]), config, fairs)
            for venue in config.venues
        }
    async with trio.open_nursery() as nursery:
        endpoints = {venue: await nursery.start(server.serve) for venue, server in servers.items()}
        task_status.started(SimHandle(servers, endpoints))
