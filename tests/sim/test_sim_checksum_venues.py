"""The real Kraken and OKX feeds against their simulated venues: snapshot on the stream,
checksums and the seqId chain as the venues write them, and recovery (resubscription of
that one book) from a corrupted level or a lost update."""

from __future__ import annotations

import functools
import math

import pytest
import trio
import trio.testing

from dragonflybot.config import VenueConfig
from dragonflybot.core.view import VenueUpdate
from dragonflybot.feed.runner import run_feed
from dragonflybot.feed.stats import FeedStats
from dragonflybot.sim import Faults

from .conftest import running
from .test_sim_with_feed import DEPTH, converge


@pytest.mark.parametrize("venue", ["kraken", "okx"])
async def test_stream_feed_converges_to_published_book(venue: str) -> None:
    stats = FeedStats()
    async with running(venues=(venue,), rate=200.0) as sim:
        view = await converge(sim, venue, "depth", stats=stats)
    assert view.venue == venue and len(view.bids) == DEPTH
    assert stats.resubscribes == 0


@pytest.mark.parametrize("venue", ["kraken", "okx"])
@pytest.mark.parametrize(
    "faults",
    [Faults(corrupt_book_every=40), Faults(gap_every=40)],
    ids=["corrupt-level", "lost-update"],
)
async def test_stream_feed_resubscribes_through_faults(
    venue: str, faults: Faults, autojump_clock: trio.testing.MockClock
) -> None:
    stats = FeedStats()
    async with running(venues=(venue,), rate=400.0) as sim:
        await converge(sim, venue, "depth", faults=faults, stats=stats)
    assert stats.resubscribes > 0
    assert stats.reconnects == 0  # one book resubscribed, never the connection
    sync = stats.sync
    assert sync is not None and sync.integrity_failures == stats.resubscribes
    assert stats.resyncs == stats.resubscribes


@pytest.mark.parametrize("venue", ["kraken", "okx"])
async def test_a_quiet_stream_venue_stays_live_on_its_ping_replies(
    venue: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Quiet is not dead: with the market held still, the venue's answers to the feed's
    application pings (Kraken ``{"method":"ping"}``, OKX ``ping``) keep it in the book."""
    stats = FeedStats()
    async with running(venues=(venue,), rate=50.0) as sim:
        endpoints = sim.endpoints[venue]
        config = VenueConfig(
            name=venue,
            ws_url=endpoints.ws_url,
            stale_after=1.0,
            dead_after=2.0,
            heartbeat_interval=0.3,
        )
        send, receive = trio.open_memory_channel[VenueUpdate](math.inf)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                functools.partial(run_feed, stats=stats), config, "ethbtc", 10, send
            )
            with trio.fail_after(10):
                while stats.state != "live":  # noqa: ASYNC110
                    await trio.sleep(0.05)
            sim.pause()
            frames = stats.frames
            await trio.sleep(10.0)  # ten times stale_after without one book message
            assert stats.state == "live" and stats.stale_periods == 0
            assert stats.reconnects == 0 and stats.frames > frames  # the pongs
            nursery.cancel_scope.cancel()
    del receive
