"""Issue 16 items 5 and 6: many streams at once, reset streams, rapid reset.

Before: 2,000 streams opened at once gave 36 s of 100 % CPU (26 s after the client
left), and every reset stream's state stayed until the connection closed (60 k
resets: 44 -> 178 MB). Now a connection has at most ``max_streams_per_connection``
streams (the excess refused with REFUSED_STREAM before any task starts), a reset
stream is freed at once, and resetting or having refused streams faster than the
reset budget is rapid reset: GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import grpc
import h2.settings
import trio

from dragonflybot.service.messages import Summary

from .conftest import RSS_GROWTH_KB
from .helpers import (
    BOOK_SUMMARY,
    ENHANCE_YOUR_CALM,
    GRPC_HEADERS,
    PREFACE,
    REFUSED_STREAM,
    SETTINGS_EMPTY,
    RawH2,
    ServerProcess,
    frame,
    read_goaway,
    watching,
)

CANCEL = 0x8


def _headers_block() -> bytes:
    """The request headers as one HPACK block of literals (no dynamic table)."""
    out = b""
    for name, value in GRPC_HEADERS:
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


async def test_streams_over_the_limit_are_refused_and_freed(server: ServerProcess) -> None:
    async with watching(server.target) as watcher:
        client = await RawH2.connect(server.port)
        await client.pump(0.3)  # take the server's SETTINGS
        assert client.h2.remote_settings.max_concurrent_streams == 100
        # h2 itself would refuse to exceed the peer's limit: lift it on our side.
        client.h2.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 1000
        client.h2.remote_settings.acknowledge()
        sids = [client.request() for _ in range(110)]
        await client.flush()
        await client.pump(3, until=lambda: all(client.done(s) for s in sids[100:]))
        refused = [s for s in sids if client.outcomes[s].reset == REFUSED_STREAM]
        assert len(refused) == 10
        report = await server.stats()
        assert report["open_streams"] == 101  # 100 on this connection, 1 the watcher's
        client.close()
        report = await server.wait_for(lambda r: r["open_streams"] == 1)
        assert report["streams_refused"] == 10
        await watcher.wait_more()


async def test_2000_streams_at_once_cost_a_bounded_amount(server: ServerProcess) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        baseline = server.fds()
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", server.port))
        block = _headers_block()
        burst = b"".join(
            frame(0x1, 0x4, sid, block) + frame(0x0, 0x1, sid, bytes(5))
            for sid in range(1, 4001, 2)
        )
        await sock.send(PREFACE + SETTINGS_EMPTY + burst)
        goaway, closed = await read_goaway(sock)
        sock.close()
        assert (goaway, closed) == (ENHANCE_YOUR_CALM, True)
        report = await server.wait_for(lambda r: r["open_streams"] == 1)
        assert report["floods_reset"] == 1
        assert report["streams_refused"] <= 300
        await watcher.wait_more()
        assert server.fds() <= baseline
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_20000_rapid_resets_are_cut(server: ServerProcess) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", server.port))
        await sock.send(PREFACE + SETTINGS_EMPTY)
        block = _headers_block()
        rst = CANCEL.to_bytes(4, "big")
        sid = 1
        with trio.move_on_after(5):
            for _ in range(20_000 // 500):
                batch = b""
                for _ in range(500):
                    batch += frame(0x1, 0x5, sid, block) + frame(0x3, 0, sid, rst)
                    sid += 2
                try:
                    await sock.send(batch)
                except OSError:
                    break
        goaway, closed = await read_goaway(sock)
        sock.close()
        assert (goaway, closed) == (ENHANCE_YOUR_CALM, True)
        report = await server.wait_for(lambda r: r["open_streams"] == 1)
        assert report["floods_reset"] == 1
        await watcher.wait_more()
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_resets_within_the_budget_free_each_stream(server: ServerProcess) -> None:
    client = await RawH2.connect(server.port)
    await client.pump(0.3)
    for _ in range(3):
        sids = [client.request() for _ in range(50)]
        await client.flush()
        await client.pump(3, until=lambda: all(client.outcomes[s].data for s in sids))  # noqa: B023
        for sid in sids:
            client.h2.reset_stream(sid, CANCEL)
        await client.flush()
        await server.wait_for(lambda r: r["open_streams"] == 0)
    report = await server.stats()
    assert report["streams_reset"] == 150
    assert report["floods_reset"] == 0 and report["floods_control"] == 0
    assert client.goaway is None
    client.close()


async def test_grpcio_cancelling_300_calls_leaves_no_state(server: ServerProcess) -> None:
    def cancel_calls() -> int:
        with grpc.insecure_channel(server.target) as channel:
            method = channel.unary_stream(
                BOOK_SUMMARY,
                request_serializer=lambda _: b"",
                response_deserializer=Summary.FromString,
            )
            for _ in range(300):
                call = method(b"", timeout=10)
                next(call)
                call.cancel()
        return 300

    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        assert await trio.to_thread.run_sync(cancel_calls) == 300
        report = await server.wait_for(lambda r: r["open_streams"] == 1)
        assert report["streams_reset"] >= 300
        assert report["floods_reset"] == 0
        await watcher.wait_more()
    assert server.rss_kb() - rss < RSS_GROWTH_KB
