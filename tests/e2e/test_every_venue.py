"""Every registered venue, simulated -> feeds -> aggregator -> gRPC -> grpcio, in one book.

The venues are the registry's, so a venue added to it joins these tests by itself. Each
Summary a client settles on is checked against an independent source of truth: the merge
(``core.merge``) of the books the simulator actually published. The demo's setup is the
same (every registered venue, full depth): ``demo_config`` builds the configuration here.
"""

from __future__ import annotations

import trio

from dragonflybot.cli.demo import build_parser, demo_config
from dragonflybot.cli.simulated import SimulatedApp, run_with_simulation
from dragonflybot.sim import Faults
from dragonflybot.sim.faults import NO_FAULTS
from dragonflybot.venues.registry import VENUES

from .conftest import INSTRUMENT, reading, running, settle
from .test_end_to_end import wait_live

ALL = tuple(VENUES)
DEPTH_MODES = tuple((name, "depth") for name in ALL)


async def test_every_venue_in_one_consolidated_book_dropped_and_back() -> None:
    async with running(DEPTH_MODES) as (_, sim, rt):  # type: ignore[arg-type]
        await wait_live(rt, set(ALL))
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            want = await settle(sim, reader, ALL)
            assert {lv.exchange for lv in [*want.bids, *want.asks]} == set(ALL)
            for venue in ALL:
                # Dropped: the venue's connection is closed under it, repeatedly.
                sim.set_faults(venue, Faults(drop_after=15))
                with trio.fail_after(20):
                    while rt.feed_stats[venue].reconnects < 1:  # noqa: ASYNC110
                        await trio.sleep(0.02)
                sim.set_faults(venue, NO_FAULTS)
                # Back: in the book again, and the book is the true merge.
                await wait_live(rt, set(ALL))
                await settle(sim, reader, ALL)
        for venue in ALL:
            assert rt.feed_stats[venue].downs >= 1


async def test_lost_messages_resync_each_venue_its_own_way() -> None:
    async with running(DEPTH_MODES) as (_, sim, rt):  # type: ignore[arg-type]
        await wait_live(rt, set(ALL))
        # Bitstamp sends no sequence: a lost diff is invisible to any client and its
        # phantom level stays until the venue touches that price again, so the book
        # cannot be required to settle here (its lost diffs are covered by the
        # crossed-book tests, tests/venues/test_crossed_venue_book.py).
        lossy = [venue for venue in ALL if venue != "bitstamp"]
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            for venue in lossy:
                sim.set_faults(venue, Faults(gap_every=10))
            await trio.sleep(2.0)
            for venue in lossy:
                sim.set_faults(venue, NO_FAULTS)
            await wait_live(rt, set(ALL))
            await settle(sim, reader, ALL)
        for venue in ALL:
            stats = rt.feed_stats[venue]
            # A lost message is repaired on the same connection (REST refetch or
            # resubscription), never by reconnecting.
            assert stats.reconnects == 0, venue
        for venue in lossy:
            stats = rt.feed_stats[venue]
            assert stats.gaps >= 1 and stats.resyncs >= 1, venue


async def test_every_summary_of_the_demo_setup_is_the_true_merge() -> None:
    config = demo_config(build_parser().parse_args(["--seed", "3", "--log-level", "ERROR"]))
    assert [v.name for v in config.venues or ()] == list(ALL)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            running_app: SimulatedApp = await nursery.start(run_with_simulation, config)
            sim = running_app.sim
            runtime = running_app.app.instruments[INSTRUMENT]
            await wait_live(runtime, set(ALL))
            async with reading(f"127.0.0.1:{runtime.port}") as reader:
                for _ in range(4):
                    await trio.sleep(0.3)
                    want = await settle(sim, reader, ALL)
                    assert len(want.bids) == 10 and len(want.asks) == 10
            running_app.app.shutdown()
