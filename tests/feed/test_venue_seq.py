"""Views carry the venue's own sequence, from the wire through the real feed (issue 12).

Every registered venue is run against its simulated venue (``dragonflybot.sim``, an
independent implementation of its protocol) in both modes; the views the feed hands
on carry the sequence of the book state they show, moving forward, or ``None`` for a
venue that numbers nothing (Kraken's v2 book has only a checksum).
"""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from dragonflybot.bus.convert import venue_view, view_message
from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.sim import SimConfig, SimHandle, serve_simulation
from dragonflybot.venues.registry import VENUES

UNNUMBERED = {"kraken"}
"""Venues whose book messages carry no sequence of any kind."""

VIEWS = 4


@pytest.mark.parametrize("mode", ["top", "depth"])
@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_views_carry_the_venue_sequence(
    autojump_clock: trio.testing.MockClock, venue: str, mode: Mode
) -> None:
    sim_config = SimConfig(
        venues=(venue,), seed=5, rate=50.0, epoch_ns=1_700_000_000_000_000_000, faults={}
    )
    views: list[VenueView] = []
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
        send, receive = trio.open_memory_channel[VenueUpdate](1000)
        await nursery.start(partial(run_feed, config, "ethbtc", 10, send, stats=FeedStats()))
        with trio.fail_after(30):
            async for update in receive:
                if isinstance(update, VenueView):
                    views.append(update)
                    if len(views) == VIEWS:
                        break
        nursery.cancel_scope.cancel()
    seqs = [v.venue_seq for v in views]
    if venue in UNNUMBERED:
        assert seqs == [None] * VIEWS
    else:
        assert all(isinstance(s, int) for s in seqs), seqs
        # One connection, no faults: each view shows a newer venue state than the last.
        assert seqs == sorted(seqs) and len(set(seqs)) == VIEWS, seqs
    # The bus carries it, with the exchange time, and hands it back unchanged.
    for view in views:
        message = view_message(view, "ETH-BTC")
        assert (message.venue_seq, message.exchange_ms) == (view.venue_seq, view.event_time_ms)
        assert venue_view(message).venue_seq == view.venue_seq
