"""The project's real feeds, unchanged, against the simulated venues: they converge to what
the simulator published, in both modes, also through faults they must recover from."""

from __future__ import annotations

import functools
import math

import pytest
import trio
import trio.testing

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed.runner import run_feed
from dragonflybot.feed.stats import FeedStats
from dragonflybot.sim import Faults, SimHandle

from .conftest import running

DEPTH = 10


async def converge(
    sim: SimHandle,
    venue: str,
    mode: Mode,
    *,
    faults: Faults | None = None,
    stats: FeedStats | None = None,
) -> VenueView:
    """Run the venue's feed (through ``faults`` for a while, if given), freeze the market,
    and step it until the feed's view equals the simulator's published top levels."""
    endpoints = sim.endpoints[venue]
    config = VenueConfig(
        name=venue, mode=mode, ws_url=endpoints.ws_url, rest_url=endpoints.rest_url
    )
    send, receive = trio.open_memory_channel[VenueUpdate](math.inf)
    latest: list[VenueUpdate] = []

    async def keep_latest() -> None:
        async for update in receive:
            latest[:] = [update]

    async with trio.open_nursery() as nursery:
        with trio.fail_after(20):
            await nursery.start(
                functools.partial(run_feed, stats=stats), config, "ethbtc", DEPTH, send
            )
        nursery.start_soon(keep_latest)
        with trio.fail_after(30):
            if faults is not None:
                sim.set_faults(venue, faults)
                await trio.sleep(1.5)  # 600 frames of live traffic through the faults
                sim.set_faults(venue, Faults())
            sim.pause()
            while True:
                await sim.flushed()
                await trio.sleep(0.02)  # let the feed take in what was written
                published = sim.published(venue, "ethbtc")
                view = latest[0] if latest else None
                if (
                    isinstance(view, VenueView)
                    and view.bids == published.top_bids(DEPTH)
                    and view.asks == published.top_asks(DEPTH)
                ):
                    nursery.cancel_scope.cancel()
                    return view
                sim.advance(1)  # a feed that is resyncing needs live diffs to finish
    raise AssertionError("unreachable")


@pytest.mark.parametrize("venue", ["binance", "bitstamp"])
@pytest.mark.parametrize("mode", ["top", "depth"])
async def test_feed_converges_to_published_book(venue: str, mode: Mode) -> None:
    async with running(venues=(venue,), rate=200.0) as sim:
        view = await converge(sim, venue, mode)
    assert view.venue == venue and len(view.bids) == DEPTH


@pytest.mark.parametrize(
    ("faults", "counter"),
    [
        (Faults(gap_every=50), "gaps"),
        (Faults(malformed_every=7), "malformed"),
        (Faults(drop_after=150), "reconnects"),
        (Faults(reconnect_after=100, reconnect_grace=0.1), "reconnects"),
    ],
    ids=["gaps", "garbage", "drops", "shutdown-notice"],
)
async def test_diff_feed_recovers_from_faults(
    faults: Faults, counter: str, autojump_clock: trio.testing.MockClock
) -> None:
    stats = FeedStats()
    async with running(venues=("binance",), rate=400.0) as sim:
        await converge(sim, "binance", "depth", faults=faults, stats=stats)
    assert getattr(stats, counter) > 0
