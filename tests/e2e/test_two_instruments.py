"""Every registered venue simulated -> feeds -> aggregator -> gRPC -> grpcio.

Two instruments in one process. Every Summary a client sees once the market is held
still is the merge of what the simulated venues last sent. A corrupted level on
Kraken's ETH-BTC book (the venue's checksum left as it was, ``corrupt_book_every``)
resubscribes that one book: ETH-BTC's Kraken feed counts resubscriptions, BTC-USDT's
never does and its stream keeps publishing, and no Summary ever carries the corrupted
amount.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs
import grpc
import trio

from dragonflybot.cli.simulated import SimulatedApp, run_with_simulation
from dragonflybot.config import AppConfig, InstrumentConfig, SimulationConfig
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView
from dragonflybot.service.messages import Summary
from dragonflybot.service.summary import to_summary
from dragonflybot.sim import Faults, SimHandle
from dragonflybot.sim.faults import NO_FAULTS
from dragonflybot.sim.kraken_venue import BAD_QTY

from .conftest import BOOK_SUMMARY, venue

VENUES = ("binance", "bitstamp", "kraken", "okx")
INSTRUMENTS = ("ETH-BTC", "BTC-USDT")
DEPTH = 10
BAD_AMOUNT = float(BAD_QTY)


def expected(sim: SimHandle, instrument: str) -> Any:
    views = [
        VenueView(
            v,
            sim.published(v, instrument).top_bids(DEPTH),
            sim.published(v, instrument).top_asks(DEPTH),
            None,
            0,
        )
        for v in VENUES
    ]
    return to_summary(merge(views, DEPTH))


@attrs.define
class Watcher:
    """A grpcio stream read in a thread, checking every Summary it receives."""

    target: str
    received: int = 0
    latest: Any = None
    corrupted: int = 0
    """Summaries holding a level with the corrupted amount (must stay 0)."""
    error: BaseException | None = None
    _call: Any = None
    _stop: threading.Event = attrs.field(factory=threading.Event)

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                method = channel.unary_stream(
                    BOOK_SUMMARY,
                    request_serializer=lambda _: b"",
                    response_deserializer=Summary.FromString,
                )
                self._call = method(b"", timeout=120)
                for summary in self._call:
                    levels = [*summary.bids, *summary.asks]
                    if any(level.amount == BAD_AMOUNT for level in levels):
                        self.corrupted += 1
                    self.latest = summary
                    self.received += 1
                    if self._stop.is_set():
                        return
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()


async def settle(sim: SimHandle, watchers: dict[str, Watcher]) -> None:
    """Hold the market still until every stream shows exactly the merge of what was sent."""
    sim.pause()
    try:
        for _ in range(10):
            await sim.flushed()
            with trio.move_on_after(3):
                for name, watcher in watchers.items():
                    want = expected(sim, name)
                    while watcher.latest != want:  # noqa: ASYNC110 - the reader is a thread
                        await trio.sleep(0.01)
                return
            sim.advance(1)
        raise AssertionError("streams never settled on the merge of the venues' books")
    finally:
        sim.resume()


async def wait_live(runtimes: Sequence[Any]) -> None:
    with trio.fail_after(20):
        for runtime in runtimes:
            while (state := runtime.latest()) is None or state.live != set(VENUES):  # noqa: ASYNC110
                await trio.sleep(0.01)


async def test_every_venue_two_instruments_and_a_checksum_fault_on_one_book() -> None:
    config = AppConfig(
        instruments=[
            InstrumentConfig(name=name, depth=DEPTH, listen="127.0.0.1:0") for name in INSTRUMENTS
        ],
        venues=[venue(name, "depth", 10.0) for name in VENUES],
        simulation=SimulationConfig(seed=11, rate=20.0),
    )
    async with trio.open_nursery() as nursery:
        running: SimulatedApp = await nursery.start(run_with_simulation, config)
        app, sim = running.app, running.sim
        bad, good = (app.instruments[name] for name in INSTRUMENTS)
        await wait_live([bad, good])
        watchers = {
            name: Watcher(f"127.0.0.1:{app.instruments[name].port}") for name in INSTRUMENTS
        }
        async with trio.open_nursery() as readers:
            for watcher in watchers.values():
                readers.start_soon(trio.to_thread.run_sync, watcher.run)
            try:
                await settle(sim, watchers)
                exchanges = {level.exchange for level in watchers["ETH-BTC"].latest.bids}
                exchanges |= {level.exchange for level in watchers["ETH-BTC"].latest.asks}
                assert exchanges == set(VENUES)

                # Corrupt Kraken's ETH-BTC book: only that book is resubscribed.
                published_before = good.publisher.books.published
                sim.set_faults("kraken", Faults(corrupt_book_every=8, fault_instrument="ETH-BTC"))
                with trio.fail_after(20):
                    while bad.feed_stats["kraken"].resubscribes < 3:  # noqa: ASYNC110
                        await trio.sleep(0.05)
                sim.set_faults("kraken", NO_FAULTS)
                assert good.publisher.books.published > published_before
                await wait_live([bad, good])
                await settle(sim, watchers)
            finally:
                for watcher in watchers.values():
                    watcher.stop()
        app.shutdown()

    kraken_bad = bad.feed_stats["kraken"]
    kraken_good = good.feed_stats["kraken"]
    assert kraken_bad.sync.integrity_failures >= 3
    assert kraken_bad.reconnects == 0
    assert kraken_good.resubscribes == 0 and kraken_good.sync.integrity_failures == 0
    for name in VENUES:
        if name != "kraken":
            assert bad.feed_stats[name].resubscribes == 0, name
    for watcher in watchers.values():
        assert watcher.error is None, watcher.error
        assert watcher.received > 5
        assert watcher.corrupted == 0
