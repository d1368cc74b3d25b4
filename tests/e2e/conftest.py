"""The whole service against simulated venues, consumed by grpcio in worker threads.

Real sockets and real time throughout (grpcio runs its own threads, which a mock
clock cannot see), so every wait is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import grpc
import trio

from dragonflybot.app import App, InstrumentRuntime
from dragonflybot.cli.simulated import SimulatedApp, run_with_simulation
from dragonflybot.config import AppConfig, InstrumentConfig, Mode, SimulationConfig, VenueConfig
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView
from dragonflybot.service.messages import Summary
from dragonflybot.service.summary import to_summary
from dragonflybot.sim import SimHandle

INSTRUMENT = "ETH-BTC"
DEPTH = 10
BOOK_SUMMARY = "/orderbook.OrderbookAggregator/BookSummary"


def venue(name: str, mode: Mode, stale_after: float) -> VenueConfig:
    # Short timeouts so faults play out in seconds. While a test holds the market
    # still (``settle``) no frame comes, so stale_after must outlast that pause.
    return VenueConfig(
        name=name,
        mode=mode,
        stale_after=stale_after,
        dead_after=stale_after + 5.0,
        backoff_base=0.05,
        backoff_cap=0.3,
        connect_timeout=2.0,
        rest_timeout=2.0,
    )


@asynccontextmanager
async def running(
    modes: Sequence[tuple[str, Mode]] = (("binance", "depth"), ("bitstamp", "depth")),
    *,
    rate: float = 20.0,
    stale_after: float = 10.0,
) -> AsyncIterator[tuple[App, SimHandle, InstrumentRuntime]]:
    config = AppConfig(
        instruments=[InstrumentConfig(name=INSTRUMENT, depth=DEPTH, listen="127.0.0.1:0")],
        venues=[venue(n, m, stale_after) for n, m in modes],
        simulation=SimulationConfig(seed=5, rate=rate),
    )
    async with trio.open_nursery() as nursery:
        running: SimulatedApp = await nursery.start(run_with_simulation, config)
        app = running.app
        runtime = app.instruments[INSTRUMENT]
        yield app, running.sim, runtime
        app.shutdown()


def expected_summary(sim: SimHandle, venues: Sequence[str]) -> Any:
    """The merge of the tops the simulator last sent, as the Summary a client must see."""
    views = [
        VenueView(
            v,
            sim.published(v, INSTRUMENT).top_bids(DEPTH),
            sim.published(v, INSTRUMENT).top_asks(DEPTH),
            None,
            0,
        )
        for v in venues
    ]
    return to_summary(merge(views, DEPTH))


@attrs.define
class GrpcioReader:
    """A grpcio stream read in a thread; ``latest`` is the newest Summary received."""

    target: str
    delay: float = 0.0
    options: list[tuple[str, Any]] = attrs.field(factory=list)
    received: int = 0
    latest: Any = None
    error: BaseException | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _call: Any = None
    _stop: threading.Event = attrs.field(factory=threading.Event)

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self.target, options=self.options) as channel:
                method = channel.unary_stream(
                    BOOK_SUMMARY,
                    request_serializer=lambda _: b"",
                    response_deserializer=Summary.FromString,
                )
                self._call = method(b"", timeout=120)
                for summary in self._call:
                    with self._lock:
                        self.latest = summary
                        self.received += 1
                    if self._stop.is_set():
                        return
                    if self.delay:
                        time.sleep(self.delay)
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()


@asynccontextmanager
async def reading(target: str, **kwargs: Any) -> AsyncIterator[GrpcioReader]:
    reader = GrpcioReader(target, **kwargs)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, reader.run)
        try:
            yield reader
        finally:
            reader.stop()
    assert reader.error is None, reader.error


async def settle(
    sim: SimHandle, reader: GrpcioReader, venues: Sequence[str], *, resume: bool = True
) -> Any:
    """Freeze the market, deliver what is queued, wait until the stream shows exactly the merge.

    A diff book can only be synced once a diff follows its snapshot, so a feed that
    has just reconnected may need the market stepped once more.
    """
    sim.pause()
    try:
        want: Any = None
        for _ in range(10):
            await sim.flushed()
            want = expected_summary(sim, venues)
            with trio.move_on_after(3):
                while reader.latest != want:  # noqa: ASYNC110 - the reader is a thread
                    await trio.sleep(0.01)
                return want
            sim.advance(1)
        raise AssertionError(f"stream never settled on\n{want}\nlast:\n{reader.latest}")
    finally:
        if resume:
            sim.resume()
