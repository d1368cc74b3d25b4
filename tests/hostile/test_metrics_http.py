"""The /metrics endpoint under a connection flood: capped, and scrapes still answered."""

from __future__ import annotations

import trio
from prometheus_client.registry import CollectorRegistry

from dragonflybot.metrics.http import serve_metrics


async def _get(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def test_idle_connections_past_the_cap_are_closed_at_once() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_metrics(
                CollectorRegistry(),
                "127.0.0.1",
                0,
                idle_timeout=30.0,
                max_connections=8,
                task_status=task_status,
            )
        )
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(8)]
        extra = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(20)]
        with trio.fail_after(5):
            for stream in extra:
                assert await stream.receive_some(100) == b""  # closed, no task kept
                await stream.aclose()
        for stream in idle:
            await stream.aclose()
        with trio.fail_after(5):
            # The closed ones free their places as the server reads their EOF.
            while not (await _get(port)).startswith(b"HTTP/1.1 200"):  # noqa: ASYNC110
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
