"""FIX end to end: simulated venues -> feeds -> both aggregators -> FIX incrementals.

A raw simplefix client keeps two books from 35=W + 35=X (the BBO world view and
the aggregated-liquidity ladder) while the simulated market moves; once the
market is frozen, both books must equal, exactly, what the simulator last sent.
Real sockets and real time, every wait bounded.
"""

from __future__ import annotations

import trio
from fix.rig import CLIENT, SERVER, RawClient
from fix.test_marketdata import changes_of
from fix.test_server_sockets import entries_of

from dragonflybot.cli.simulated import SimulatedApp, run_with_simulation
from dragonflybot.config import AppConfig, InstrumentConfig, SimulationConfig
from dragonflybot.core.liquidity import build_ladder
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView
from dragonflybot.fix.config import FixConfig, FixSessionEntry
from dragonflybot.fix.marketdata import (
    BookKind,
    Entry,
    MDRequest,
    SubscriptionType,
    apply_incremental,
    bbo_entries,
    ladder_entries,
)
from dragonflybot.sim import SimHandle

from .conftest import INSTRUMENT, venue

DEPTH = 5
LADDER = 8
VENUES = ("binance", "bitstamp")


def expected(sim: SimHandle) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    views = [
        VenueView(
            v,
            sim.published(v, INSTRUMENT).top_bids(LADDER),
            sim.published(v, INSTRUMENT).top_asks(LADDER),
            None,
            0,
        )
        for v in VENUES
    ]
    bbo = MDRequest("b", SubscriptionType.SUBSCRIBE, book=BookKind.BBO, depth=DEPTH)
    ladder = MDRequest("l", SubscriptionType.SUBSCRIBE, book=BookKind.LADDER, depth=LADDER)
    return (
        bbo_entries(merge(views, DEPTH), bbo),
        ladder_entries(build_ladder(views, LADDER), ladder),
    )


async def test_fix_incrementals_track_the_simulated_market_exactly() -> None:
    config = AppConfig(
        instruments=[
            InstrumentConfig(
                name=INSTRUMENT, depth=DEPTH, liquidity_depth=LADDER, listen="127.0.0.1:0"
            )
        ],
        venues=[venue(n, "diff", 10.0) for n in VENUES],
        simulation=SimulationConfig(seed=7, rate=40.0),
        fix=FixConfig(
            listen="127.0.0.1:0",
            sessions=[FixSessionEntry(sender_comp_id=SERVER, target_comp_id=CLIENT, password="pw")],
        ),
    )
    async with trio.open_nursery() as nursery:
        running: SimulatedApp = await nursery.start(run_with_simulation, config)
        app, sim = running.app, running.sim
        assert app.fix_server is not None
        client = await RawClient.connect(app.fix_server.port)
        assert (await client.logon()).msg_type == "A"
        await client.subscribe("bbo", update="1", book="0")
        await client.subscribe("lad", update="1", book="1")
        books: dict[str, tuple[Entry, ...]] = {}
        increments = 0

        async def read_one() -> None:
            nonlocal increments
            msg = await client.receive(within=10)
            req = msg.get(262)
            if req not in ("bbo", "lad"):
                return
            book = BookKind.BBO if req == "bbo" else BookKind.LADDER
            tag = 275 if book is BookKind.BBO else 5002
            if msg.msg_type == "W":
                books[req] = entries_of(msg.fields, market_tag=tag)
            elif msg.msg_type == "X":
                increments += 1
                changes = changes_of(list(msg.body()), book)
                books[req] = apply_incremental(book, books[req], changes)

        with trio.fail_after(30):
            while increments < 20:
                await read_one()
        sim.pause()
        try:
            want: tuple[tuple[Entry, ...], tuple[Entry, ...]] | None = None
            for _ in range(10):
                await sim.flushed()
                want = expected(sim)
                with trio.move_on_after(3):
                    while (books.get("bbo"), books.get("lad")) != want:
                        await read_one()
                    break
                sim.advance(1)
            assert (books.get("bbo"), books.get("lad")) == want
        finally:
            sim.resume()
        assert app.fix_server.stats.garbled == 0 and app.fix_server.stats.rejects == 0
        app.shutdown()
