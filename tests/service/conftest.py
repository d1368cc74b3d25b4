"""A real gRPC server on an ephemeral port, fed by a fake feed (a memory channel)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import grpc
import trio
import trio.testing

from dragonflybot.aggregator import Aggregator
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE, parse
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.service import (
    BookServiceV1,
    BookSummaryService,
    GrpcServer,
    HealthService,
    InstrumentSource,
    SummaryPublisher,
)
from dragonflybot.service.messages import HealthCheckRequest, HealthCheckResponse, Summary

BOOK_SUMMARY = "/orderbook.OrderbookAggregator/BookSummary"


def view(venue: str, bid: str, ask: str, *, levels: int = 1, amount: str = "1") -> VenueView:
    """A venue's top ``levels``: bids at ``bid``, ``bid``-1e-18, ...; asks likewise upwards."""
    b, a, q = parse(bid), parse(ask), parse(amount)
    return VenueView(
        venue,
        tuple(Level(b - i, q) for i in range(levels)),
        tuple(Level(a + i, q) for i in range(levels)),
        None,
        time.monotonic_ns(),
    )


def numbered(venue: str, n: int, *, levels: int = 1) -> VenueView:
    """A view whose best bid is ``n`` (so a received Summary tells which state it is)."""
    return VenueView(
        venue,
        tuple(Level(n * ONE - i, ONE) for i in range(levels)),
        tuple(Level(n * ONE + ONE + i, ONE) for i in range(levels)),
        None,
        time.monotonic_ns(),
    )


@attrs.define
class Harness:
    send: trio.MemorySendChannel[VenueUpdate]
    publisher: SummaryPublisher
    server: GrpcServer
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def push(self, *updates: VenueUpdate) -> None:
        """Send updates and wait until the aggregator has taken them (and published)."""
        for update in updates:
            await self.send.send(update)
        await trio.testing.wait_all_tasks_blocked()

    async def down(self, venue: str) -> None:
        await self.push(VenueDown(venue, "test"))


@asynccontextmanager
async def serving(
    depth: int = 5, extra: Sequence[Any] = (), port: int = 0, v1_instrument: str | None = None
) -> AsyncIterator[Harness]:
    """Aggregator + gRPC server (BookSummary, Health, ``extra`` servicers) on 127.0.0.1;
    with ``v1_instrument`` also ``dragonflybot.v1`` BookService serving the same books
    under that name."""
    publisher = SummaryPublisher()
    if v1_instrument is not None:
        source = InstrumentSource(v1_instrument, ("binance",), depth, publisher.books)
        extra = [BookServiceV1([source]), *extra]
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    server = GrpcServer(
        [BookSummaryService(publisher.books), HealthService(publisher.serving), *extra],
        "127.0.0.1",
        port,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(Aggregator(depth, publisher).run, receive)
        bound = await nursery.start(server.serve)
        yield Harness(send, publisher, server, bound)
        server.shutdown()
        with trio.move_on_after(5):
            await server.wait_closed()
        nursery.cancel_scope.cancel()


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` (for counters that have no event to wait on); fail after 10 s."""
    with trio.fail_after(10):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the value itself
            await trio.sleep(0.005)


# --- grpcio (an implementation we did not write), run in worker threads ------------------


def grpcio_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target)


def grpcio_stream(channel: grpc.Channel, timeout: float = 30.0) -> Any:
    method = channel.unary_stream(
        BOOK_SUMMARY,
        request_serializer=lambda _: b"",
        response_deserializer=Summary.FromString,
    )
    return method(b"", timeout=timeout)


def grpcio_take(target: str, n: int) -> list[Any]:
    """The first ``n`` Summaries of a new stream."""
    with grpcio_channel(target) as channel:
        call = grpcio_stream(channel)
        out = [next(call) for _ in range(n)]
        call.cancel()
        return out


def grpcio_health(target: str, service: str = "") -> int:
    with grpcio_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=HealthCheckResponse.FromString,
        )
        status: int = check(HealthCheckRequest(service=service), timeout=10).status
        return status
