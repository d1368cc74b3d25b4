"""Quiet is not dead: liveness is the connection's, data age is tracked apart.

A scripted ``MessageStream`` (``run_feed``'s ``connect``) plays a Binance venue that
sends one book and then nothing: with its pongs answering the feed's pings it stays
in the book however long it is quiet (its data age grows in the metrics); with the
pongs gone too, it is excluded within ``stale_after`` and the connection is replaced
after ``dead_after``. All on the autojump clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio.testing

from dragonflybot.app import InstrumentPlan, InstrumentRuntime
from dragonflybot.config import VenueConfig
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.metrics import build_registry


class QuietVenue:
    """One connection: acks the subscription, sends one book, then only pongs (or not)."""

    def __init__(self, *, pongs: bool) -> None:
        self.pongs = pongs
        self.pings = 0
        self.connections = 0
        self.reconnected = trio.Event()
        self._send, self._receive = trio.open_memory_channel[str](100)
        self._last_received = 0.0
        self.url = "wss://quiet.invalid/stream"

    @property
    def last_received(self) -> float:
        return self._last_received

    async def ping(self) -> None:
        self.pings += 1
        if self.pongs:
            self._last_received = trio.current_time()
        await trio.lowlevel.checkpoint()

    async def send(self, message: str) -> None:
        request = json.loads(message)
        stream = request["params"][0]
        data = {"lastUpdateId": 1, "bids": [["0.05", "1"]], "asks": [["0.06", "1"]]}
        await self._send.send(json.dumps({"result": None, "id": request["id"]}))
        await self._send.send(json.dumps({"stream": stream, "data": data}))

    async def receive(self) -> str | bytes:
        message = await self._receive.receive()
        self._last_received = trio.current_time()
        return message

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def connect(self, url: str, **_: Any) -> AsyncIterator[QuietVenue]:
        self.connections += 1
        if self.connections == 2:
            self.reconnected.set()
        self._send, self._receive = trio.open_memory_channel[str](100)
        self._last_received = trio.current_time()
        yield self


def config(**kwargs: Any) -> VenueConfig:
    return VenueConfig(
        name="binance", stale_after=10.0, dead_after=30.0, heartbeat_interval=2.0, **kwargs
    )


async def test_a_quiet_venue_on_a_healthy_connection_stays_in_the_book(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = QuietVenue(pongs=True)
    stats = FeedStats()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    runtime = InstrumentRuntime(InstrumentPlan("ETH-BTC", 10, "127.0.0.1", 0, (config(),)))
    runtime.feed_stats["binance"] = stats
    registry = build_registry([runtime])
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(run_feed, config(), "ETH-BTC", 10, send, stats=stats, connect=venue.connect)
        )
        first = await receive.receive()
        assert isinstance(first, VenueView)
        await trio.sleep(120)  # twelve times stale_after without a single book change
        assert stats.state == "live" and stats.stale_periods == 0 and stats.reconnects == 0
        assert venue.pings > 10 and venue.connections == 1
        try:
            update: VenueUpdate | None = receive.receive_nowait()
        except trio.WouldBlock:
            update = None
        assert update is None  # no VenueDown: the venue never left the book
        age = registry.get_sample_value(
            "dragonflybot_feed_data_age_seconds", {"instrument": "ETH-BTC", "venue": "binance"}
        )
        assert age is not None and 119.0 <= age <= 121.0
        nursery.cancel_scope.cancel()


async def test_a_silent_connection_is_excluded_within_stale_after_then_replaced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = QuietVenue(pongs=False)
    stats = FeedStats()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(run_feed, config(), "ETH-BTC", 10, send, stats=stats, connect=venue.connect)
        )
        assert isinstance(await receive.receive(), VenueView)
        started = trio.current_time()
        down = await receive.receive()
        assert down == VenueDown("binance", "stale", "stale")
        assert trio.current_time() - started <= 10.0 + 1e-6
        assert venue.pings >= 1  # it was asked, and did not answer
        with trio.fail_after(60):
            await venue.reconnected.wait()
        assert stats.reconnects == 1 and "silent" in str(stats.last_error)
        nursery.cancel_scope.cancel()
