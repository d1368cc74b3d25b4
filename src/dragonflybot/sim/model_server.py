"""A simulated venue publishing the seeded market model (see ``market``).

The driver generates each market's updates when they fall due on trio's clock, in due order
across instruments, renders each once per subscribed stream and queues it on every
subscriber's connection. It tracks what was actually written, so tests can compare a
client's book with ``published`` — the book as of the last frame sent.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import Final

import trio

from dragonflybot.core.book import FullDepthBook
from dragonflybot.sim.config import SimConfig
from dragonflybot.sim.connection import ClientConnection
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.market import FairPrice, Update, VenueMarket
from dragonflybot.sim.plugin import Renderer, SimVenue
from dragonflybot.sim.protocol import Key
from dragonflybot.sim.schedule import Schedule
from dragonflybot.sim.venue_server import VenueServer

log = logging.getLogger(__name__)

CPU_SLICE: Final = 0.02
"""Most wall time the market driver spends generating updates before it yields."""
MAX_LAG: Final = 1.0
"""A driver this many seconds behind its schedule skips ahead instead of bursting."""


def _due(item: tuple[str, Schedule]) -> float:
    return item[1].next_due


class ModelVenueServer(VenueServer):
    """A venue publishing the seeded market model."""

    def __init__(
        self, venue: str, sim: SimVenue, config: SimConfig, fairs: Mapping[str, FairPrice]
    ) -> None:
        specs = [config.spec(name) for name in config.instruments]
        catalog: dict[str, str] = {}
        for spec in specs:
            catalog.update(sim.streams(spec))
        super().__init__(venue, sim.protocol(catalog), sim.ws_path, config)
        self._sim = sim
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
        self._renderer = self._sim.renderer(self.protocol, self.markets)

    async def background(self, nursery: trio.Nursery) -> None:
        self._build_markets()
        if self.config.start_paused or self.faults.quiet_market:
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
        snapshot = self._sim.subscribed
        if snapshot is not None and self._renderer is not None:
            frame = snapshot(self._renderer, key, self.markets[instrument])
            if frame is not None:
                # The book as of now includes every update still pending: written, it
                # publishes through the newest of them.
                pending = self._pending[instrument]
                conn.outbox.put(frame._replace(update=pending[-1] if pending else None))

    def connection_opened(self, conn: ClientConnection, nursery: trio.Nursery) -> None:
        super().connection_opened(conn, nursery)
        if self._sim.heartbeat is not None:
            nursery.start_soon(self._heartbeats, conn)

    async def _heartbeats(self, conn: ClientConnection) -> None:
        """The venue's unasked heartbeat frames for one connection (paused or not)."""
        heartbeat = self._sim.heartbeat
        assert heartbeat is not None
        while True:
            await trio.sleep(self._sim.heartbeat_every)
            conn.outbox.put_many(
                Outgoing(text, FrameKind.CONTROL)
                for text in heartbeat(self.protocol, conn.session, self.time_ms())
            )

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
        restart = self._sim.restart
        every = self.faults.restart_every
        if restart is not None and every is not None and update.seq % every == 0:
            render = partial(restart, self._renderer)
        for key, conns in subs.items():
            frame = render(key, market, update)
            if frame is None:
                continue  # a depth-limited stream this update did not reach
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

    def set_faults(self, faults: Faults) -> None:
        # A quiet market is a paused one: its schedule resumes without a burst.
        if faults.quiet_market and not self.faults.quiet_market:
            self.pause()
        elif self.faults.quiet_market and not faults.quiet_market:
            self.resume()
        super().set_faults(faults)

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
