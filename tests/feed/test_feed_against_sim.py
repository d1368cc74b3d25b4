"""run_feed against the project's simulated venues (``dragonflybot.sim``), faults included.

The simulator is an independent implementation of both venues' wire protocols; a
feed that converges to exactly the book the simulator last published, through
gaps, drops, garbage and reconnect notices, is checked end to end over real
sockets and real REST.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.sim import Faults, SimConfig, SimHandle, serve_simulation

DEPTH = 10


async def converge(
    sim: SimHandle, venue: str, updates: trio.MemoryReceiveChannel[VenueUpdate]
) -> VenueView:
    """Freeze the market, deliver what is queued, and wait for the feed to show it.

    A Bitstamp diff book can only be synced once a diff arrives after the snapshot,
    so if the feed has just reconnected when the market freezes, the market is
    stepped by one update at a time until it has.
    """
    sim.pause()
    latest: VenueUpdate | None = None
    for _ in range(5):
        await sim.flushed()
        published = sim.published(venue, "ethbtc")
        want = (published.top_bids(DEPTH), published.top_asks(DEPTH))
        with trio.move_on_after(10):
            while not (isinstance(latest, VenueView) and (latest.bids, latest.asks) == want):
                latest = await updates.receive()
            return latest
        sim.advance(1)
    raise AssertionError(f"{venue} feed never showed the published book; last: {latest}")


async def run_against_sim(
    venue: str, mode: Mode, faults: Faults | None, *, seconds: float = 30.0
) -> FeedStats:
    sim_config = SimConfig(
        venues=(venue,),
        seed=11,
        rate=20.0,
        epoch_ns=1_700_000_000_000_000_000,
        faults={venue: faults} if faults else {},
    )
    async with trio.open_nursery() as nursery:
        sim: SimHandle = await nursery.start(serve_simulation, sim_config)
        endpoints = sim.endpoints[venue]
        config = VenueConfig(
            name=venue,
            mode=mode,
            ws_url=endpoints.ws_url,
            rest_url=endpoints.rest_url,
            stale_after=30.0,
            backoff_base=0.1,
            backoff_cap=1.0,
        )
        send, recv = trio.open_memory_channel[VenueUpdate](10_000)
        stats = FeedStats()
        await nursery.start(partial(run_feed, config, "ethbtc", DEPTH, send, stats=stats))
        await trio.sleep(seconds)
        view = await converge(sim, venue, recv)
        assert view.venue == venue and len(view.bids) == DEPTH
        nursery.cancel_scope.cancel()
    return stats


@pytest.mark.parametrize("venue", ["binance", "bitstamp"])
@pytest.mark.parametrize("mode", ["top", "depth"])
async def test_feed_converges_to_the_simulated_book(
    autojump_clock: trio.testing.MockClock, venue: str, mode: Mode
) -> None:
    stats = await run_against_sim(venue, mode, None)
    assert (stats.malformed, stats.reconnects, stats.gaps) == (0, 0, 0)
    assert stats.state == "live" and stats.forwarded > 10


async def test_binance_diff_recovers_from_gaps_garbage_and_drops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = Faults(gap_every=50, malformed_every=40, drop_after=300)
    stats = await run_against_sim("binance", "depth", faults, seconds=60.0)
    assert stats.gaps >= 1 and stats.resyncs >= 1
    assert stats.malformed >= 1 and stats.reconnects >= 1
    assert stats.sync.snapshots >= 1 + stats.resyncs


async def test_bitstamp_diff_reconnects_on_request_and_resnapshots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = Faults(reconnect_after=200, malformed_every=60)
    stats = await run_against_sim("bitstamp", "depth", faults, seconds=60.0)
    assert stats.reconnects >= 1 and "bts:request_reconnect" in str(stats.last_error)
    assert stats.sync.snapshots >= stats.reconnects + 1
    assert stats.malformed >= 1


async def test_stalled_bitstamp_goes_stale_and_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = Faults(stall_after=100, stall_seconds=40.0)
    stats = await run_against_sim("bitstamp", "top", faults, seconds=60.0)
    assert stats.stale_periods == 1 and stats.downs == 1
    assert stats.reconnects == 0 and stats.state == "live"


async def test_lost_bitstamp_diffs_never_publish_a_book_crossed_with_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``gap_every=2`` loses every other Bitstamp diff; with no sequence numbers the loss
    is invisible, but phantom levels cross the book. Each crossing excludes the venue
    (``VenueDown``) and refetches the snapshot; no forwarded view is ever crossed."""
    sim_config = SimConfig(
        venues=("bitstamp",),
        seed=11,
        rate=20.0,
        epoch_ns=1_700_000_000_000_000_000,
        faults={"bitstamp": Faults(gap_every=2)},
    )
    views = downs = 0
    async with trio.open_nursery() as nursery:
        sim: SimHandle = await nursery.start(serve_simulation, sim_config)
        endpoints = sim.endpoints["bitstamp"]
        config = VenueConfig(
            name="bitstamp",
            mode="depth",
            ws_url=endpoints.ws_url,
            rest_url=endpoints.rest_url,
            stale_after=30.0,
        )
        send, recv = trio.open_memory_channel[VenueUpdate](100_000)
        stats = FeedStats()
        await nursery.start(partial(run_feed, config, "ETH-BTC", DEPTH, send, stats=stats))
        with trio.move_on_after(120):
            async for update in recv:
                if isinstance(update, VenueView):
                    views += 1
                    if update.bids and update.asks:
                        assert update.bids[0].price < update.asks[0].price, update
                else:
                    downs += 1
                if stats.sync.crossed >= 3 and views > 20:
                    break
        nursery.cancel_scope.cancel()
    assert stats.sync.crossed >= 3 and stats.resyncs >= stats.sync.crossed
    # Every crossing but possibly the last has been resynced from a fresh snapshot.
    assert downs >= 3 and stats.sync.snapshots >= stats.sync.crossed
