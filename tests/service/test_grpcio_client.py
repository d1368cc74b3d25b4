"""The service through grpcio: an HTTP/2 + gRPC implementation this project did not write."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
import trio

from dragonflybot.core.merge import merge
from dragonflybot.service.messages import (
    NOT_SERVING,
    SERVING,
    HealthCheckRequest,
    HealthCheckResponse,
)
from dragonflybot.service.summary import to_summary

from .conftest import (
    grpcio_channel,
    grpcio_health,
    grpcio_stream,
    grpcio_take,
    numbered,
    serving,
    view,
)


async def test_grpcio_reads_the_stream() -> None:
    async with serving(depth=4) as h:
        a = view("binance", "100", "101", levels=3, amount="2")
        b = view("bitstamp", "100.5", "100.9", levels=3)
        await h.push(a, b)
        first, second = await trio.to_thread.run_sync(
            lambda: _take_while(h.target, lambda: trio.from_thread.run(h.down, "binance"))
        )
        assert first == to_summary(merge([a, b], 4))
        assert second == to_summary(merge([b], 4))


def _take_while(target: str, between: Any) -> tuple[Any, Any]:
    with grpcio_channel(target) as channel:
        call = grpcio_stream(channel)
        first = next(call)
        between()
        second = next(call)
        call.cancel()
        return first, second


async def test_grpcio_health_check_and_watch() -> None:
    async with serving() as h:
        assert await trio.to_thread.run_sync(grpcio_health, h.target) == NOT_SERVING
        statuses: list[int] = []
        seen = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def watch() -> None:
            with grpcio_channel(h.target) as channel:
                method = channel.unary_stream(
                    "/grpc.health.v1.Health/Watch",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=HealthCheckResponse.FromString,
                )
                call = method(
                    HealthCheckRequest(service="orderbook.OrderbookAggregator"), timeout=30
                )
                for reply in call:
                    statuses.append(reply.status)
                    trio.from_thread.run_sync(seen.set, trio_token=token)
                    if len(statuses) == 3:
                        call.cancel()
                        return

        async with trio.open_nursery() as n:
            n.start_soon(trio.to_thread.run_sync, watch)
            for action in (lambda: h.push(view("binance", "1", "2")), lambda: h.down("binance")):
                await seen.wait()
                seen = trio.Event()
                await action()
        assert statuses == [NOT_SERVING, SERVING, NOT_SERVING]
        assert await trio.to_thread.run_sync(grpcio_health, h.target, "") == NOT_SERVING


async def test_grpcio_unknown_service_is_not_found() -> None:
    async with serving() as h:
        with pytest.raises(grpc.RpcError) as info:
            await trio.to_thread.run_sync(grpcio_health, h.target, "x.Y")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# grpcio grows its receive window with BDP probing, so by default a slow grpcio client
# buffers (and later reads) states the server already handed over; a client that keeps
# its window small lets the server's conflation do its work.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 4096)]


async def test_slow_client_beside_a_fast_one() -> None:
    """The fast one keeps up, the slow one skips states, and both end on the latest one."""
    last = 300
    async with serving(depth=10) as h:
        await h.push(numbered("binance", 1, levels=10))
        got: dict[str, list[int]] = {"fast": [], "slow": [], "slow-default": []}

        def reader(name: str, delay: float, options: list[tuple[str, int]]) -> None:
            with grpc.insecure_channel(h.target, options=options) as channel:
                call = grpcio_stream(channel)
                for summary in call:
                    got[name].append(round(summary.bids[0].price))
                    if got[name][-1] == last:
                        call.cancel()
                        return
                    time.sleep(delay)

        async with trio.open_nursery() as n:
            n.start_soon(trio.to_thread.run_sync, reader, "fast", 0.0, [])
            n.start_soon(trio.to_thread.run_sync, reader, "slow", 0.01, SMALL_WINDOW)
            n.start_soon(trio.to_thread.run_sync, reader, "slow-default", 0.005, [])
            await wait_started(got)
            for k in range(2, last + 1):
                await h.send.send(numbered("binance", k, levels=10))
                await trio.sleep(0.002)
        fast, slow = got["fast"], got["slow"]
        for name, states in got.items():
            assert states[-1] == last, name
            assert states == sorted(set(states)), name
        assert len(slow) < last / 2
        assert len(fast) > 2 * len(slow)


async def wait_started(got: dict[str, list[int]]) -> None:
    with trio.fail_after(10):
        while not all(got.values()):  # noqa: ASYNC110 - the readers are threads
            await trio.sleep(0.005)


async def test_grpcio_sees_unavailable_on_shutdown() -> None:
    async with serving() as h:
        await h.push(view("binance", "1", "2"))

        def read_until_end() -> grpc.StatusCode:
            with grpcio_channel(h.target) as channel:
                call = grpcio_stream(channel)
                next(call)
                trio.from_thread.run_sync(h.server.shutdown)
                try:
                    for _ in call:
                        pass
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

        assert await trio.to_thread.run_sync(read_until_end) == grpc.StatusCode.UNAVAILABLE


async def test_grpcio_take_many_streams() -> None:
    async with serving() as h:
        await h.push(view("binance", "1", "2"))
        results: list[list[Any]] = []

        async def one() -> None:
            results.append(await trio.to_thread.run_sync(grpcio_take, h.target, 1))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(one)
        assert len(results) == 10
        assert all(r[0].bids[0].exchange == "binance" for r in results)
