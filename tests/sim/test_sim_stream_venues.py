"""The Coinbase and Bybit feeds against their simulated venues, on the autojump clock.

They converge to what the simulator published, also through every fault their venue
can show: lost messages (Coinbase ``sequence_num`` / Bybit ``u`` gaps, each resubscribing
the product on the same connection), garbage, dropped connections and, for Bybit, service
restarts (snapshots with ``u == 1``). A quiet product stays in the book: Coinbase's
``heartbeats`` channel and Bybit's answered pings keep the connection proven alive.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from dragonflybot.client import MessageStream, connect_websocket
from dragonflybot.config import VenueConfig
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed.runner import run_feed
from dragonflybot.feed.stats import FeedStats
from dragonflybot.sim import Faults

from .conftest import running
from .test_sim_with_feed import converge

STREAM_VENUES = ("coinbase", "bybit")


@pytest.mark.parametrize("venue", STREAM_VENUES)
async def test_feed_converges_to_published_book(
    venue: str, autojump_clock: trio.testing.MockClock
) -> None:
    stats = FeedStats()
    async with running(venues=(venue,), rate=200.0) as sim:
        view = await converge(sim, venue, "depth", stats=stats)
    assert view.venue == venue and len(view.bids) == 10
    assert stats.snapshot_requests == 0  # the book came on the stream


@pytest.mark.parametrize("venue", STREAM_VENUES)
@pytest.mark.parametrize(
    ("faults", "counter"),
    [
        (Faults(gap_every=50), "resubscribes"),
        (Faults(malformed_every=7), "malformed"),
        (Faults(drop_after=150), "reconnects"),
    ],
    ids=["gaps", "garbage", "drops"],
)
async def test_feed_recovers_from_faults(
    venue: str, faults: Faults, counter: str, autojump_clock: trio.testing.MockClock
) -> None:
    stats = FeedStats()
    async with running(venues=(venue,), rate=400.0) as sim:
        await converge(sim, venue, "depth", faults=faults, stats=stats)
    assert getattr(stats, counter) > 0
    if counter == "resubscribes":
        assert stats.gaps > 0 and stats.reconnects == 0


async def test_bybit_service_restarts_replace_the_book(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stats = FeedStats()
    async with running(venues=("bybit",), rate=400.0) as sim:
        await converge(sim, "bybit", "depth", faults=Faults(restart_every=40), stats=stats)
    # Each restart is a snapshot replacing the book: no gap, no resubscription.
    assert stats.sync.snapshots > 5
    assert stats.gaps == 0 and stats.resubscribes == 0 and stats.reconnects == 0


@pytest.mark.parametrize("venue", STREAM_VENUES)
async def test_a_quiet_product_stays_in_the_book(
    venue: str, autojump_clock: trio.testing.MockClock
) -> None:
    stats = FeedStats()
    async with running(venues=(venue,), rate=50.0) as sim:
        endpoints = sim.endpoints[venue]
        config = VenueConfig(
            name=venue,
            mode="depth",
            ws_url=endpoints.ws_url,
            stale_after=10.0,
            dead_after=30.0,
            heartbeat_interval=5.0,
        )
        send, receive = trio.open_memory_channel[VenueUpdate](math.inf)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                await nursery.start(
                    functools.partial(run_feed, stats=stats), config, "ethbtc", 10, send
                )
            sim.set_faults(venue, Faults(quiet_market=True))
            await sim.flushed()
            ignored = stats.ignored
            await trio.sleep(300)  # ten times dead_after without a book change
            assert stats.state == "live" and stats.reconnects == 0
            assert stats.stale_periods == 0
            # What kept it alive: Coinbase's heartbeats (one a second), Bybit's pongs.
            assert stats.ignored - ignored >= (250 if venue == "coinbase" else 50)
            updates = []
            while True:
                try:
                    updates.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            assert all(isinstance(u, VenueView) for u in updates)
            # The market moves again: so does the book.
            sim.set_faults(venue, Faults())
            with trio.fail_after(10):
                assert isinstance(await receive.receive(), VenueView)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("levels", [1, 200])
async def test_bybit_depth_topics_keep_exactly_the_venues_top(
    levels: int, autojump_clock: trio.testing.MockClock
) -> None:
    """Levels entering the top ``levels`` (a better one removed) come in the deltas, so the
    client's truncated book is the venue's top at every depth."""
    async with running(venues=("bybit",), rate=400.0) as sim:
        endpoints = sim.endpoints["bybit"]
        config = VenueConfig(name="bybit", mode="depth", ws_url=endpoints.ws_url, depth=levels)
        send, receive = trio.open_memory_channel[VenueUpdate](math.inf)
        shown = min(levels, 100)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                await nursery.start(run_feed, config, "ethbtc", shown, send)
            await trio.sleep(2.0)  # 800 updates
            sim.pause()
            await sim.flushed()
            await trio.sleep(0.05)
            view = None
            while True:
                try:
                    view = receive.receive_nowait()
                except trio.WouldBlock:
                    break
            published = sim.published("bybit", "ethbtc")
            assert isinstance(view, VenueView)
            assert view.bids == published.top_bids(shown)
            assert view.asks == published.top_asks(shown)
            nursery.cancel_scope.cancel()


async def test_a_configured_jwt_goes_to_the_venue_and_into_no_log_line(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    secret = "eyJ0eXAiOiJKV1QifQ.never-logged"
    caplog.set_level(logging.DEBUG)
    stats = FeedStats()
    sent: list[str] = []

    class Spy:
        """The feed's stream, noting what the feed sends."""

        def __init__(self, stream: MessageStream) -> None:
            self.stream = stream
            self.url = stream.url

        @property
        def last_received(self) -> float:
            return self.stream.last_received

        async def ping(self) -> None:
            await self.stream.ping()

        async def send(self, message: str) -> None:
            sent.append(message)
            await self.stream.send(message)

        async def receive(self) -> str | bytes:
            return await self.stream.receive()

        async def aclose(self) -> None:
            await self.stream.aclose()

    @asynccontextmanager
    async def spying(url: str, **kwargs: Any) -> AsyncIterator[Spy]:
        async with connect_websocket(url, **kwargs) as stream:
            yield Spy(stream)

    async with running(venues=("coinbase",), rate=400.0) as sim:
        endpoints = sim.endpoints["coinbase"]
        config = VenueConfig(name="coinbase", mode="depth", ws_url=endpoints.ws_url, jwt=secret)
        send, _receive = trio.open_memory_channel[VenueUpdate](math.inf)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                await nursery.start(
                    functools.partial(run_feed, stats=stats, connect=spying),
                    config,
                    "ETH-BTC",
                    10,
                    send,
                )
            sim.set_faults("coinbase", Faults(gap_every=20, drop_after=300))
            await trio.sleep(3.0)  # resubscriptions and reconnects resend it
            nursery.cancel_scope.cancel()
    assert stats.resubscribes > 0 and stats.reconnects > 0
    assert len(sent) > 4 and all(json.loads(text)["jwt"] == secret for text in sent)
    assert caplog.records and secret not in caplog.text
