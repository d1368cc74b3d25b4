"""The trio side of a simulated venue: WebSocket + REST listeners, clients, the market driver.

``VenueServer`` holds what every simulated venue shares (handshakes, connections, faults,
counters); ``ModelVenueServer`` publishes the market model, ``replay.ReplayVenueServer``
plays back a capture. Venue specifics live in the sans-I/O ``*_venue`` modules.
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

import trio

from dragonflybot.core.book import FullDepthBook
from dragonflybot.errors import ConfigError
from dragonflybot.sim.binance_venue import BinanceProtocol, BinanceRenderer, depth_streams
from dragonflybot.sim.bitstamp_venue import BitstampProtocol, BitstampRenderer, book_channels
from dragonflybot.sim.config import Endpoints, SimConfig
from dragonflybot.sim.connection import ClientConnection
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import Outgoing
from dragonflybot.sim.http import HttpResponse, serve_http
from dragonflybot.sim.market import FairPrice, Update, VenueMarket
from dragonflybot.sim.protocol import Key, Rejection, VenueProtocol
from dragonflybot.sim.schedule import Schedule
from dragonflybot.sim.transport import ConnectionHandler, PendingRequest, serve_trio_websocket
from dragonflybot.sim.ws_lean import serve_wsproto

log = logging.getLogger(__name__)

WS_PATH: Final = {"binance": "/stream", "bitstamp": ""}
"""Path of the endpoint a feed connects to (Binance: the combined-stream endpoint)."""
CPU_SLICE: Final = 0.02
"""Most wall time the market driver spends generating updates before it yields."""
MAX_LAG: Final = 1.0
"""A driver this many seconds behind its schedule skips ahead instead of bursting."""


def make_protocol(venue: str, catalog: Mapping[str, str]) -> VenueProtocol:
    if venue == "binance":
        return BinanceProtocol(catalog)
    if venue == "bitstamp":
        return BitstampProtocol(catalog)
    raise ConfigError(f"unknown venue {venue!r}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class VenueServer(abc.ABC):
    """One simulated venue: listeners, client connections, faults and counters."""

    def __init__(self, venue: str, protocol: VenueProtocol, config: SimConfig) -> None:
        self.venue = venue
        self._protocol = protocol
        self.config = config
        self._faults = config.faults_for(venue)
        self.frames_sent = 0
        """Messages written to clients (data, control, garbage and notices)."""
        self.connections: set[ClientConnection] = set()
        self._next_index = 0
        self._clock_origin = 0.0
        self._epoch_ns = 0

    # --- ConnectionHost -------------------------------------------------------------------

    @property
    def protocol(self) -> VenueProtocol:
        return self._protocol

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        self._faults = faults

    @property
    def stamp_send_time(self) -> bool:
        return self.config.stamp_send_time

    def time_ms(self) -> int:
        elapsed = trio.current_time() - self._clock_origin
        return (self._epoch_ns + round(elapsed * 1e9)) // 1_000_000

    @abc.abstractmethod
    def subscribe(self, conn: ClientConnection, key: Key) -> None: ...

    @abc.abstractmethod
    def unsubscribe(self, conn: ClientConnection, key: Key) -> None: ...

    def written(self, frames: list[Outgoing], messages: int) -> None:
        self.frames_sent += messages

    # --- serving --------------------------------------------------------------------------

    @abc.abstractmethod
    def rest(self, method: str, target: str) -> HttpResponse:
        """Answer a REST request."""

    async def background(self, nursery: trio.Nursery) -> None:
        """Start the venue's own tasks once the listeners are bound."""
        await trio.lowlevel.checkpoint()

    def connection_opened(self, conn: ClientConnection, nursery: trio.Nursery) -> None:
        """Hook: a client connection started (its tasks run in ``nursery``)."""
        log.debug("%s: client %d connected", self.venue, conn.index)

    async def serve(
        self, *, task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind the WebSocket and REST listeners, report the endpoints, serve until cancelled."""
        config = self.config
        serve_ws: Callable[..., Awaitable[None]] = (
            serve_wsproto if config.ws_backend == "wsproto" else serve_trio_websocket
        )
        handler: ConnectionHandler = self._on_request
        async with trio.open_nursery() as nursery:
            try:
                ws_port = await nursery.start(
                    serve_ws, handler, config.host, config.ports.get(self.venue, 0)
                )
                rest_port = await nursery.start(
                    serve_http, self.rest, config.host, config.rest_ports.get(self.venue, 0)
                )
            except OSError as exc:
                raise ConfigError(f"{self.venue}: cannot listen on {config.host}: {exc}") from exc
            self._clock_origin = trio.current_time()
            self._epoch_ns = self._start_epoch_ns()
            await self.background(nursery)
            host = _url_host(config.host)
            task_status.started(
                Endpoints(
                    ws_url=f"ws://{host}:{ws_port}{WS_PATH[self.venue]}",
                    rest_url=f"http://{host}:{rest_port}",
                )
            )

    def _start_epoch_ns(self) -> int:
        return self.config.epoch_ns if self.config.epoch_ns is not None else time.time_ns()

    async def _on_request(self, request: PendingRequest) -> None:
        opened = self._protocol.open(request.target)
        if isinstance(opened, Rejection):
            await request.reject(opened.status, opened.body)
            return
        session, keys = opened
        if keys and self._faults.reject_subscriptions:
            await request.reject(400, "Invalid request: subscription refused")
            return
        socket = await request.accept()
        self._next_index += 1
        conn = ClientConnection(
            self,
            socket,
            session,
            index=self._next_index,
            seed=self.config.seed,
            max_pending=self.config.max_pending,
        )
        self.connections.add(conn)
        try:
            conn.subscribe(keys)
            async with trio.open_nursery() as nursery:
                conn_nursery = await nursery.start(conn.run)
                self.connection_opened(conn, conn_nursery)
        finally:
            self.connections.discard(conn)

    async def flushed(self) -> None:
        """Until every frame queued so far has been written to its client."""
        for conn in list(self.connections):
            await conn.outbox.wait_idle()


def _due(item: tuple[str, Schedule]) -> float:
    return item[1].next_due


class Renderer(Protocol):
    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing: ...

    def rest(self, method: str, target: str) -> HttpResponse: ...


class ModelVenueServer(VenueServer):
    """A venue publishing the seeded market model."""

    def __init__(self, venue: str, config: SimConfig, fairs: Mapping[str, FairPrice]) -> None:
        specs = [config.spec(name) for name in config.instruments]
        catalog: dict[str, str] = {}
        for spec in specs:
            catalog.update(depth_streams(spec) if venue == "binance" else book_channels(spec))
        super().__init__(venue, make_protocol(venue, catalog), config)
        self._fairs = fairs
        self._specs = specs
        self.markets: dict[str, VenueMarket] = {}
        self._published: dict[str, FullDepthBook] = {}
        self._pending: dict[str, deque[Update]] = {}
        self._subs: dict[str, dict[Key, set[ClientConnection]]] = {s.name: {} for s in specs}
        self._schedules: dict[str, Schedule] = {}
        self._renderer: Renderer | None = None
        self._paused = False
        self._resumed = trio.Event()
        self._kick = trio.Event()
        self._lag_skips = 0
        self._lag_logged_at = -math.inf

    def _build_markets(self) -> None:
        config = self.config
        params = config.market_params()
        for spec in self._specs:
            market = VenueMarket(
                self.venue,
                spec,
                self._fairs[spec.name],
                seed=config.seed,
                epoch_ns=self._epoch_ns,
                params=params,
            )
            self.markets[spec.name] = market
            published = FullDepthBook()
            depth = max(market.book.depth)
            published.load(market.book.top_bids(depth), market.book.top_asks(depth))
            self._published[spec.name] = published
            self._pending[spec.name] = deque()
            self._schedules[spec.name] = Schedule(
                config.rate_for(self.venue), self._clock_origin, self._epoch_ns
            )
        renderer: Renderer
        if self.venue == "binance":
            assert isinstance(self.protocol, BinanceProtocol)
            renderer = BinanceRenderer(self.protocol, self.markets)
        else:
            assert isinstance(self.protocol, BitstampProtocol)
            renderer = BitstampRenderer(self.protocol, self.markets)
        self._renderer = renderer

    async def background(self, nursery: trio.Nursery) -> None:
        self._build_markets()
        if self.config.start_paused:
            self.pause()
        nursery.start_soon(self._drive)
        await trio.lowlevel.checkpoint()

    def rest(self, method: str, target: str) -> HttpResponse:
        if self._renderer is None:
            return HttpResponse.json(503, {"error": "starting"})
        return self._renderer.rest(method, target)

    # --- subscriptions and publication ------------------------------------------------------

    def subscribe(self, conn: ClientConnection, key: Key) -> None:
        instrument = self.protocol.catalog[key[0]]
        self._subs[instrument].setdefault(key, set()).add(conn)

    def unsubscribe(self, conn: ClientConnection, key: Key) -> None:
        subs = self._subs[self.protocol.catalog[key[0]]]
        conns = subs.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del subs[key]

    def written(self, frames: list[Outgoing], messages: int) -> None:
        self.frames_sent += messages
        latest: dict[str, int] = {}
        for frame in frames:
            if frame.update is not None:
                latest[frame.instrument] = frame.update.seq
        for instrument, seq in latest.items():
            self._publish_through(instrument, seq)

    def _publish_through(self, instrument: str, seq: int) -> None:
        pending = self._pending[instrument]
        book = self._published[instrument]
        while pending and pending[0].seq <= seq:
            update = pending.popleft()
            book.apply(update.bids, update.asks)

    def _emit(self, instrument: str, update: Update) -> None:
        subs = self._subs[instrument]
        if not subs:
            # Nobody to send to: what is published is simply the book.
            self._publish_through(instrument, update.seq - 1)
            self._published[instrument].apply(update.bids, update.asks)
            return
        self._pending[instrument].append(update)
        market = self.markets[instrument]
        assert self._renderer is not None
        render = self._renderer.render
        for key, conns in subs.items():
            frame = render(key, market, update)
            for conn in conns:
                conn.outbox.put(frame)

    # --- pacing ---------------------------------------------------------------------------

    async def _drive(self) -> None:
        interval = self.config.batch_interval
        schedules = list(self._schedules.items())
        steps = {name: self.markets[name].step for name, _ in schedules}
        while True:
            if self._paused:
                await self._resumed.wait()
                continue
            now = trio.current_time()
            # Updates in due order across instruments (ties in configuration order), so the
            # interleaving of streams is as deterministic as each stream. At most CPU_SLICE
            # of work per wake, so the connection writers always get their turn.
            budget_end = time.perf_counter() + CPU_SLICE
            done = False
            while not done and time.perf_counter() < budget_end:
                for _ in range(64):
                    name, schedule = min(schedules, key=_due)
                    if schedule.next_due > now:
                        done = True
                        break
                    self._emit(name, steps[name](schedule.take()))
            for name, schedule in schedules:
                if schedule.next_due < now - MAX_LAG:
                    self._lagged(name, now - schedule.next_due)
                    schedule.skip(now - schedule.next_due)
            wake = max(min(s.next_due for _, s in schedules), now + interval)
            with trio.move_on_at(wake):
                await self._kick.wait()
            self._kick = trio.Event()

    def _lagged(self, instrument: str, behind: float) -> None:
        """The market cannot keep up with its rate (CPU-bound): say so, at most every 10 s."""
        self._lag_skips += 1
        now = trio.current_time()
        if now - self._lag_logged_at >= 10.0:
            self._lag_logged_at = now
            log.warning(
                "%s %s: %.1f s behind schedule, skipping ahead (%d times so far): "
                "the rate is more than this machine can generate",
                self.venue,
                instrument,
                behind,
                self._lag_skips,
            )

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._resumed = trio.Event()
            now = trio.current_time()
            for schedule in self._schedules.values():
                schedule.pause(now)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            now = trio.current_time()
            for schedule in self._schedules.values():
                schedule.resume(now)
            self._resumed.set()
            self._kick.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def advance(self, updates: int) -> None:
        """Generate ``updates`` updates per instrument right now (paused or not)."""
        for instrument, schedule in self._schedules.items():
            step = self.markets[instrument].step
            for _ in range(updates):
                self._emit(instrument, step(schedule.take()))

    def book(self, instrument: str) -> FullDepthBook:
        return self.markets[instrument].book

    def published(self, instrument: str) -> FullDepthBook:
        return self._published[instrument]
