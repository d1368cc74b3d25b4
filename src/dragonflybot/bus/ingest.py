"""From bus deliveries to what the next layer consumes, with liveness applied.

Two consumers, each a sans-I/O gate plus a trio task around it:

- ``ViewGate`` (aggregator role): views, down notices and heartbeats of one
  instrument in, the aggregator's ``VenueUpdate`` out. A venue's view is passed
  on only while the venue is live: heard from (view, down notice or heartbeat)
  within ``stale_after`` and the bus up. A venue that falls silent or a bus that
  goes down turns into ``VenueDown``, so the aggregator never merges a book
  from a dead feed process; when it speaks again its held view is passed on.
- ``BookGate`` (gateway role): consolidated books of one instrument in,
  ``BookState`` out, numbered by the gateway. While the bus is down or the
  aggregator silent for ``stale_after`` it yields the empty, not-serving state:
  the gRPC health turns NOT_SERVING and clients get no stale levels.

Every message counts as a sign of life only as of its ``sent_ns``: a latest
value read from Redis may be old (its publisher may be dead), and a consumer that
fell behind the stream (its backlog waits in coredis's buffers) must not take
old news for the present. This needs the machines' clocks in sync to well within
``stale_after`` (NTP keeps them within milliseconds; ``stale_after`` is seconds);
a publisher whose clock runs behind by more makes its venues look stale, which
fails safe.
"""

from __future__ import annotations

import math
import time

import trio

from dragonflybot.aggregator.aggregator import Publisher
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.codec import BookMsg, DownMsg, HeartbeatMsg, ViewMsg
from dragonflybot.bus.convert import book_state, venue_view
from dragonflybot.bus.staleness import StalenessWatch
from dragonflybot.bus.subscriber import Received
from dragonflybot.core.merge import Consolidated
from dragonflybot.core.view import VenueDown, VenueUpdate

_BUS_DOWN = "bus down"


def _sent_at(received: Received, now: float, wall_now_ns: int) -> float:
    """When the message was sent, on the caller's clock: ``now`` minus its age on the wall
    clock (never in the future, so a publisher whose clock runs ahead is simply "now")."""
    age_ns = wall_now_ns - received.message.sent_ns
    return now - age_ns / 1e9 if age_ns > 0 else now


class ViewGate:
    """Venue updates for one instrument's aggregator, from its bus subjects."""

    def __init__(self, instrument: str, stale_after: float) -> None:
        self.instrument = instrument
        self.watch = StalenessWatch(stale_after)
        self.bus_up = False
        self._held: dict[str, ViewMsg | DownMsg] = {}
        self._passed: dict[str, ViewMsg] = {}
        """The view each venue has live in the aggregator now."""

    def on_received(self, received: Received, now: float, wall_now_ns: int) -> list[VenueUpdate]:
        body = received.message.body
        if isinstance(body, ViewMsg | DownMsg):
            if body.instrument != self.instrument:
                return []
            self._held[body.venue] = body
        elif not isinstance(body, HeartbeatMsg):
            return []
        self.watch.seen(body.venue, _sent_at(received, now, wall_now_ns), now)
        return self._sync(body.venue, now)

    def on_bus(self, up: bool, now: float) -> list[VenueUpdate]:
        self.bus_up = up
        out: list[VenueUpdate] = []
        for venue in list(self._held):
            out += self._sync(venue, now)
        return out

    def on_tick(self, now: float) -> list[VenueUpdate]:
        out: list[VenueUpdate] = []
        for venue in self.watch.expire(now):
            out += self._sync(venue, now)
        return out

    def next_deadline(self) -> float:
        deadline = self.watch.next_deadline()
        return math.inf if deadline is None else deadline

    def _sync(self, venue: str, now: float) -> list[VenueUpdate]:
        held = self._held.get(venue)
        passed = self._passed.get(venue)
        if isinstance(held, ViewMsg) and self.bus_up and self.watch.is_live(venue, now):
            if held is passed:
                return []
            self._passed[venue] = held
            return [venue_view(held)]
        if passed is None:
            return []
        del self._passed[venue]
        if not self.bus_up:
            reason = _BUS_DOWN
        elif isinstance(held, DownMsg):
            reason = held.reason
        else:
            reason = f"stale: nothing on the bus for {self.watch.stale_after:g} s"
        return [VenueDown(venue, reason)]


class BookGate:
    """Book states for one instrument's gateway, from its bus subject."""

    def __init__(self, instrument: str, stale_after: float) -> None:
        self.instrument = instrument
        self.watch = StalenessWatch(stale_after)
        self.bus_up = False
        self._latest: BookMsg | None = None
        self._serving_book: BookMsg | None = None
        self._seq = 0
        self._empty_published = False

    def on_received(self, received: Received, now: float, wall_now_ns: int) -> BookState | None:
        body = received.message.body
        if not isinstance(body, BookMsg) or body.instrument != self.instrument:
            return None
        self._latest = body
        self.watch.seen(self.instrument, _sent_at(received, now, wall_now_ns), now)
        return self._sync(now)

    def on_bus(self, up: bool, now: float) -> BookState | None:
        self.bus_up = up
        return self._sync(now)

    def on_tick(self, now: float) -> BookState | None:
        self.watch.expire(now)
        return self._sync(now)

    def next_deadline(self) -> float:
        deadline = self.watch.next_deadline()
        return math.inf if deadline is None else deadline

    def _sync(self, now: float) -> BookState | None:
        latest = self._latest
        if latest is not None and self.bus_up and self.watch.is_live(self.instrument, now):
            if latest is self._serving_book:
                return None
            self._serving_book = latest
            self._empty_published = False
            self._seq += 1
            return book_state(latest, self._seq)
        if self._empty_published:
            return None
        self._serving_book = None
        self._empty_published = True
        self._seq += 1
        return BookState(self._seq, time.monotonic_ns(), Consolidated.empty(), frozenset(), None)


class _Ended:
    pass


_ENDED = _Ended()


async def _next(
    receive: trio.MemoryReceiveChannel[Received], deadline: float
) -> Received | _Ended | None:
    """The next delivery, ``None`` at ``deadline`` (a staleness check is due), or ``_ENDED``.

    Only the wait is under the deadline: handing the result on never is, so a
    timeout cannot cut an update in half.
    """
    with trio.move_on_at(deadline):
        try:
            return await receive.receive()
        except trio.EndOfChannel:
            return _ENDED
    return None


async def run_view_ingest(
    gate: ViewGate,
    receive: trio.MemoryReceiveChannel[Received],
    bus_status: Fanout[bool],
    send: trio.MemorySendChannel[VenueUpdate],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed ``gate`` from a ``BusSubscriber``'s channel and status; updates go to ``send``
    (the aggregator's input). Closes ``send`` when ``receive`` ends."""

    async def step(updates: list[VenueUpdate]) -> None:
        for update in updates:
            try:
                send.send_nowait(update)  # no scheduler round per update while there is room
            except trio.WouldBlock:
                await send.send(update)

    async with send, receive, trio.open_nursery() as nursery:

        async def watch_status() -> None:
            with bus_status.subscribe() as statuses:
                async for up in statuses:
                    await step(gate.on_bus(up, trio.current_time()))

        nursery.start_soon(watch_status)
        task_status.started()
        while not isinstance(item := await _next(receive, gate.next_deadline()), _Ended):
            now = trio.current_time()
            if item is None:
                await step(gate.on_tick(now))
            else:
                await step(gate.on_received(item, now, time.time_ns()))
        nursery.cancel_scope.cancel()


async def run_book_ingest(
    gate: BookGate,
    receive: trio.MemoryReceiveChannel[Received],
    bus_status: Fanout[bool],
    publisher: Publisher,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Feed ``gate`` from a ``BusSubscriber``; states go to ``publisher``, the same
    ``Publisher`` an in-process aggregator feeds (for the gRPC service a
    ``SummaryPublisher``, whose ``serving`` then drives the health answer, or a plain
    ``Fanout[BookState]``). Closes it on return, as the aggregator does."""

    def step(state: BookState | None) -> None:
        if state is not None:
            publisher.publish(state)

    try:
        async with receive, trio.open_nursery() as nursery:
            step(gate.on_bus(bool(bus_status.latest()), trio.current_time()))

            async def watch_status() -> None:
                with bus_status.subscribe() as statuses:
                    async for up in statuses:
                        step(gate.on_bus(up, trio.current_time()))

            nursery.start_soon(watch_status)
            task_status.started()
            while not isinstance(item := await _next(receive, gate.next_deadline()), _Ended):
                now = trio.current_time()
                if item is None:
                    step(gate.on_tick(now))
                else:
                    step(gate.on_received(item, now, time.time_ns()))
            nursery.cancel_scope.cancel()
    finally:
        publisher.close()
