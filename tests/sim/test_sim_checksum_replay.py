"""Kraken and OKX recorded from their simulated venues and replayed: the real feed syncs
from the recorded snapshot and verifies every recorded checksum (and OKX's seqId chain)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import trio

from dragonflybot.config import VenueConfig
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed.runner import run_feed
from dragonflybot.feed.stats import FeedStats
from dragonflybot.sim.capture import RecordKind

from .conftest import running
from .test_sim_replay import kinds, record_from_sim


@pytest.mark.parametrize("venue", ["kraken", "okx"])
async def test_recorded_stream_venue_replays_into_a_verified_book(
    venue: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{venue}.cap"
    async with running(venues=(venue,), rate=100.0) as sim:
        records = await record_from_sim(sim, venue, path, count=30)
    assert not kinds(records, RecordKind.REST)  # the book comes whole from the stream
    received = b"".join(r.payload for r in kinds(records, RecordKind.WS_IN))
    assert b'"snapshot"' in received

    stats = FeedStats()
    views: list[VenueView] = []
    send, receive = trio.open_memory_channel[VenueUpdate](math.inf)
    async with running(replay=(str(path),), as_fast_as_possible=True, replay_settle=0.0) as sim:
        endpoints = sim.endpoints[venue]
        config = VenueConfig(name=venue, ws_url=endpoints.ws_url, rest_url=endpoints.rest_url)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(20):
                await nursery.start(
                    functools.partial(run_feed, stats=stats), config, "ETH-BTC", 10, send
                )
                async for update in receive:
                    if isinstance(update, VenueView):
                        views.append(update)
                    if stats.sync.applied >= 10:
                        break
            nursery.cancel_scope.cancel()
    assert views and views[-1].bids and views[-1].asks
    assert stats.resubscribes == 0 and stats.sync.integrity_failures == 0
    assert stats.sync.snapshots == 1
