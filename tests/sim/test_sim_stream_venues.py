"""The real Kraken and OKX feeds against their simulated venues: snapshot on the stream,
checksums and the seqId chain as the venues write them, and recovery (resubscription of
that one book) from a corrupted level or a lost update."""

from __future__ import annotations

import pytest
import trio
import trio.testing

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
