"""The service through purerpc's client (our channel with the small window)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from purerpc import Cardinality, Client, RPCSignature, Service, Servicer
from purerpc.grpclib.exceptions import NotFoundError, UnavailableError, UnimplementedError

from dragonflybot.core.merge import merge
from dragonflybot.service.channel import open_channel
from dragonflybot.service.messages import (
    NOT_SERVING,
    SERVICE_UNKNOWN,
    SERVING,
    Empty,
    HealthCheckRequest,
    Summary,
)
from dragonflybot.service.proto.health_grpc import HealthStub
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub
from dragonflybot.service.summary import to_summary

from .conftest import Harness, numbered, serving, view, wait_for


async def take(harness: Harness, n: int, channel: Any | None = None) -> list[Any]:
    async def run(ch: Any) -> list[Any]:
        out = []
        async for summary in OrderbookAggregatorStub(ch).BookSummary(Empty()):
            out.append(summary)
            if len(out) == n:
                break
        return out

    if channel is not None:
        return await run(channel)
    async with open_channel("127.0.0.1", harness.port) as ch:
        return await run(ch)


async def test_stream_starts_with_the_current_book_and_follows_it() -> None:
    async with serving(depth=3) as h:
        a = view("binance", "0.0500", "0.0502", levels=3)
        b = view("bitstamp", "0.0501", "0.0503", levels=2)
        await h.push(a, b)
        async with open_channel("127.0.0.1", h.port) as ch:
            stream = OrderbookAggregatorStub(ch).BookSummary(Empty())
            first = await stream.__anext__()
            assert first == to_summary(merge([a, b], 3))
            assert [lv.exchange for lv in first.bids] == ["bitstamp", "bitstamp", "binance"]
            assert first.spread == pytest.approx(0.0001)
            await h.down("bitstamp")
            second = await stream.__anext__()
            assert second == to_summary(merge([a], 3))
            await h.down("binance")
            empty = await stream.__anext__()
            # Every venue down: the stream stays open, both sides empty, spread 0.
            assert (list(empty.bids), list(empty.asks), empty.spread) == ([], [], 0.0)
            await stream.aclose()


async def test_health_check_and_watch_follow_the_live_venues() -> None:
    async with serving() as h, open_channel("127.0.0.1", h.port) as ch:
        health = HealthStub(ch)
        for name in ("", "orderbook.OrderbookAggregator"):
            reply = await health.Check(HealthCheckRequest(service=name))
            assert reply.status == NOT_SERVING
        with pytest.raises(NotFoundError):
            await health.Check(HealthCheckRequest(service="no.such.Service"))

        watch = health.Watch(HealthCheckRequest(service=""))
        assert (await watch.__anext__()).status == NOT_SERVING
        await h.push(view("binance", "1", "2"))
        assert (await watch.__anext__()).status == SERVING
        assert (await health.Check(HealthCheckRequest(service=""))).status == SERVING
        # Another venue coming and going changes nothing while binance is live.
        await h.push(view("bitstamp", "1", "2"))
        await h.down("bitstamp")
        await h.down("binance")
        assert (await watch.__anext__()).status == NOT_SERVING
        await watch.aclose()

        unknown = health.Watch(HealthCheckRequest(service="nope"))
        assert (await unknown.__anext__()).status == SERVICE_UNKNOWN
        await unknown.aclose()


async def test_ten_concurrent_streams_all_get_every_state_they_can() -> None:
    async with serving() as h:
        await h.push(numbered("binance", 1))
        results: dict[str, list[int]] = {}

        async def client(name: str, channel: Any | None) -> None:
            got: list[int] = []

            async def run(ch: Any) -> None:
                async for summary in OrderbookAggregatorStub(ch).BookSummary(Empty()):
                    got.append(round(summary.bids[0].price))
                    if got[-1] == 50:
                        return

            if channel is None:
                async with open_channel("127.0.0.1", h.port) as ch:
                    await run(ch)
            else:
                await run(channel)
            results[name] = got

        with trio.fail_after(20):
            async with open_channel("127.0.0.1", h.port) as shared, trio.open_nursery() as n:
                # Five on their own connections, five multiplexed on one.
                for i in range(5):
                    n.start_soon(client, f"own{i}", None)
                    n.start_soon(client, f"shared{i}", shared)
                await trio.testing.wait_all_tasks_blocked()
                for k in range(2, 51):
                    await h.push(numbered("binance", k))
        assert sorted(results) == sorted(
            [f"own{i}" for i in range(5)] + [f"shared{i}" for i in range(5)]
        )
        for got in results.values():
            assert got[-1] == 50
            assert got == sorted(set(got))
            assert len(got) > 1


class Flood(Servicer):  # type: ignore[misc]
    """A servicer that never awaits between messages (purerpc's starvation case)."""

    async def Spam(self, message: Any) -> Any:
        summary = Summary(spread=1.0)
        while True:
            yield summary

    @property
    def service(self) -> Service:
        service = Service("test.Flood")
        service.add_method(
            "Spam", self.Spam, RPCSignature(Cardinality.UNARY_STREAM, type(Empty()), Summary)
        )
        return service


async def test_a_stream_that_never_awaits_cannot_starve_the_others() -> None:
    async with serving(extra=[Flood()]) as h:
        await h.push(view("binance", "1", "2"))
        async with open_channel("127.0.0.1", h.port) as flood_ch:
            stub = Client("test.Flood", flood_ch).get_method_stub(
                "Spam", RPCSignature(Cardinality.UNARY_STREAM, type(Empty()), Summary)
            )
            received = 0

            async def drain() -> None:
                nonlocal received
                async for _ in stub(Empty()):
                    received += 1

            async with trio.open_nursery() as n:
                n.start_soon(drain)
                await wait_for(lambda: received >= 100)
                with trio.fail_after(20):
                    # While the flood runs, the book stream and health still answer.
                    assert len(await take(h, 1)) == 1
                    async with open_channel("127.0.0.1", h.port) as ch:
                        reply = await HealthStub(ch).Check(HealthCheckRequest(service=""))
                    assert reply.status == SERVING
                n.cancel_scope.cancel()


async def test_unknown_method_is_unimplemented() -> None:
    async with serving() as h, open_channel("127.0.0.1", h.port) as ch:
        stub = Client("orderbook.OrderbookAggregator", ch).get_method_stub(
            "Nope", RPCSignature(Cardinality.UNARY_UNARY, type(Empty()), Summary)
        )
        with pytest.raises(UnimplementedError):
            await stub(Empty())


async def test_a_disconnecting_client_frees_its_slot_at_once() -> None:
    async with serving() as h:
        await h.push(view("binance", "1", "2"))
        async with open_channel("127.0.0.1", h.port) as ch:
            await take(h, 1, ch)
            stream = OrderbookAggregatorStub(ch).BookSummary(Empty())
            await stream.__anext__()
            assert h.publisher.books.subscriber_count >= 1
        # The connection is closed; nothing new is published, yet the slot is gone.
        await wait_for(lambda: h.publisher.books.subscriber_count == 0)


async def test_shutdown_ends_streams_with_unavailable_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving() as h:
        await h.push(view("binance", "1", "2"))
        async with open_channel("127.0.0.1", h.port) as ch:
            stream = OrderbookAggregatorStub(ch).BookSummary(Empty())
            await stream.__anext__()
            watch = HealthStub(ch).Watch(HealthCheckRequest(service=""))
            assert (await watch.__anext__()).status == SERVING
            h.server.shutdown()
            with pytest.raises(UnavailableError, match="shutting down"):
                await stream.__anext__()
            with pytest.raises(UnavailableError):
                await watch.__anext__()
        with trio.fail_after(5):
            await h.server.wait_closed()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
    assert not any("Got exception" in r.getMessage() for r in caplog.records)


async def test_a_peer_speaking_garbage_is_dropped_and_the_server_goes_on() -> None:
    async with serving() as h:
        await h.push(view("binance", "1", "2"))
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(5):
            while await stream.receive_some():  # until the server closes it
                pass
        await stream.aclose()
        assert len(await take(h, 1)) == 1
