"""Issue 16 item 4: control-frame floods, and SIGTERM in the middle of one.

Before: a PING flood of ~60 k frames/s dropped every client to 0-0.1 Summaries/s
(purerpc handled each 1 MiB read whole before yielding) and SIGTERM took 10 s.
Now the socket is read 16 KiB at a time, and past the control-frame budget the
connection gets GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import grpc
import pytest
import trio

from dragonflybot.service.messages import HealthCheckRequest, HealthCheckResponse

from .conftest import RSS_GROWTH_KB
from .helpers import (
    BOOK_SUMMARY,
    ENHANCE_YOUR_CALM,
    HEALTH_CHECK,
    PREFACE,
    SETTINGS_EMPTY,
    ServerProcess,
    frame,
    read_goaway,
    watching,
)

FLOOD_FRAMES = 20_000
"""Frames per flood: 100x the default burst, sent in batches of 500."""

FLOODS = {
    "PING": frame(0x6, 0, 0, bytes(8)),
    "SETTINGS": frame(0x4, 0, 0, b"\x00\x03\x00\x00\x00\x64"),
    "SETTINGS ACK": frame(0x4, 0x1, 0),
    "WINDOW_UPDATE": frame(0x8, 0, 0, (1).to_bytes(4, "big")),
    "PRIORITY": frame(0x2, 0, 3, bytes(5)),
    "empty DATA": frame(0x0, 0, 1, b""),
    "unknown type": frame(0xEE, 0, 0, b"x"),
}


async def flood(port: int, unit: bytes, count: int = FLOOD_FRAMES) -> tuple[int | None, bool]:
    """Send ``count`` copies of ``unit`` after the preface; the GOAWAY that came back."""
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    await sock.send(PREFACE + SETTINGS_EMPTY)
    batch = unit * 500
    with trio.move_on_after(5):
        for _ in range(count // 500):
            try:
                await sock.send(batch)
            except OSError:
                break
    result = await read_goaway(sock, 5)
    sock.close()
    return result


@pytest.mark.parametrize("kind", list(FLOODS))
async def test_a_control_frame_flood_is_cut_with_enhance_your_calm(
    server: ServerProcess, kind: str
) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        baseline = server.fds()
        goaway, closed = await flood(server.port, FLOODS[kind])
        assert closed
        if kind != "empty DATA":  # DATA on an idle stream is a protocol error first
            assert goaway == ENHANCE_YOUR_CALM
        await watcher.wait_more()
        report = await server.wait_for(lambda r: r["open_connections"] == 1)
        assert server.fds() <= baseline
    assert server.alive
    assert server.rss_kb() - rss < RSS_GROWTH_KB
    if kind != "empty DATA":
        assert report["floods_control"] == 1


async def test_a_honest_burst_of_pings_is_answered(server: ServerProcess) -> None:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", server.port))
    await sock.send(PREFACE + SETTINGS_EMPTY + frame(0x6, 0, 0, bytes(8)) * 50)
    goaway, closed = await read_goaway(sock, 0.5)
    sock.close()
    assert (goaway, closed) == (None, False)


async def test_sigterm_during_a_ping_flood_ends_streams_with_unavailable(
    server: ServerProcess,
) -> None:
    async with watching(server.target) as watcher:
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(flood, server.port, FLOODS["PING"], 200_000)
            await trio.sleep(0.2)
            with trio.fail_after(5):
                code, report = await server.terminate()
            nursery.cancel_scope.cancel()
        assert code == 0
        with trio.fail_after(5):
            while watcher.status is None:  # noqa: ASYNC110 - set by the grpcio thread
                await trio.sleep(0.02)
        assert watcher.status.name == "UNAVAILABLE"
    assert report["floods_control"] >= 1


async def test_a_busy_honest_grpcio_client_is_never_cut(server: ServerProcess) -> None:
    """1,000 health checks and 100 cancelled streams as fast as grpcio goes, one channel."""

    def busy() -> int:
        with grpc.insecure_channel(server.target) as channel:
            check = channel.unary_unary(
                HEALTH_CHECK,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=HealthCheckResponse.FromString,
            )
            stream = channel.unary_stream(
                BOOK_SUMMARY, request_serializer=lambda _: b"", response_deserializer=bytes
            )
            done = 0
            for i in range(1000):
                check(HealthCheckRequest(service=""), timeout=10)
                done += 1
                if i % 10 == 0:
                    call = stream(b"", timeout=10)
                    next(call)
                    call.cancel()
            return done

    assert await trio.to_thread.run_sync(busy) == 1000
    report = await server.stats()
    assert report["floods_control"] == report["floods_reset"] == 0
