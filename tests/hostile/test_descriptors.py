"""Issue 16 item 2: running out of descriptors, connection floods, idle and slow connections.

Before: 1,100 idle connections (fd limit 1024) made anyio raise
``BrokenResourceError`` out of the accept loop and the process exited; idle,
preface-only and slowloris connections were never closed.
"""

from __future__ import annotations

import trio

from .conftest import RSS_GROWTH_KB, TEST_LIMITS
from .helpers import (
    ENHANCE_YOUR_CALM,
    PREFACE,
    SETTINGS_EMPTY,
    RawH2,
    ServerProcess,
    read_goaway,
    watching,
)


async def _open(port: int, n: int) -> list[trio.socket.SocketType]:
    socks = []
    for _ in range(n):
        sock = trio.socket.socket()
        try:
            await sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    return socks


async def test_the_server_survives_running_out_of_descriptors() -> None:
    # 64 descriptors: the process needs ~20 for itself, so 150 connections exhaust it.
    limits = {**TEST_LIMITS, "handshake_timeout": 30.0}
    with ServerProcess(limits, nofile=64) as server:
        async with watching(server.target) as watcher:
            baseline = server.fds()
            socks = await _open(server.port, 150)
            await server.wait_for(lambda r: r["accept_errors"] > 0)
            assert server.alive
            await watcher.wait_more()  # the established client never noticed
            for sock in socks:
                sock.close()
            await server.wait_for(lambda r: r["open_connections"] == 1)
            # Accepting again: a new client gets served.
            client = await RawH2.connect(server.port)
            sid = client.request()
            await client.flush()
            await client.pump(5, until=lambda: bool(client.outcomes[sid].data))
            assert client.outcomes[sid].data
            client.close()
            await server.wait_for(lambda r: r["open_connections"] == 1)
            assert server.fds() <= baseline
        code, report = await server.terminate()
    assert code == 0
    assert report["accept_errors"] > 0


async def test_connections_past_the_cap_are_refused_with_goaway() -> None:
    with ServerProcess({**TEST_LIMITS, "max_connections": 20}) as server:
        async with watching(server.target) as watcher:  # connection 1 of 20
            baseline = server.fds()
            socks = await _open(server.port, 19)
            await server.wait_for(lambda r: r["open_connections"] == 20)
            extra = await _open(server.port, 30)
            for sock in extra:
                goaway, closed = await read_goaway(sock, 2)
                assert (goaway, closed) == (ENHANCE_YOUR_CALM, True)
                sock.close()
            report = await server.stats()
            assert report["connections_refused"] == 30
            await watcher.wait_more()
            for sock in socks:
                sock.close()
            await server.wait_for(lambda r: r["open_connections"] == 1)
            assert server.fds() <= baseline


async def test_idle_preface_only_and_slowloris_connections_are_closed(
    server: ServerProcess,
) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        baseline = server.fds()
        idle = await _open(server.port, 50)
        preface_only = await _open(server.port, 50)
        for sock in preface_only:
            await sock.send(PREFACE[:10])
        slow = await _open(server.port, 20)
        handshaken = await _open(server.port, 20)
        for sock in handshaken:
            await sock.send(PREFACE + SETTINGS_EMPTY)
        # Slowloris: a byte of the preface every 100 ms, never finishing in time.
        async with trio.open_nursery() as nursery:

            async def drip(sock: trio.socket.SocketType) -> None:
                for byte in PREFACE:
                    try:
                        await sock.send(bytes([byte]))
                    except OSError:
                        return
                    await trio.sleep(0.1)

            for sock in slow:
                nursery.start_soon(drip, sock)
            await server.wait_for(lambda r: r["connections_timed_out"] >= 120, within=5)
            nursery.cancel_scope.cancel()
        # The handshaken ones last until the idle timeout, then get GOAWAY(NO_ERROR).
        for sock in handshaken:
            goaway, closed = await read_goaway(sock, 5)
            assert (goaway, closed) == (0, True)
        report = await server.wait_for(lambda r: r["open_connections"] == 1)
        assert report["connections_timed_out"] == 140
        await watcher.wait_more()
        for sock in [*idle, *preface_only, *slow, *handshaken]:
            sock.close()
        assert server.fds() <= baseline
    assert server.rss_kb() - rss < RSS_GROWTH_KB
