"""Issue 16 item 3: no connection can make the server hold much memory.

Before: 34 unfinished 30 MiB messages on one connection took RSS to 1.07 GB, and
63 CONTINUATION frames of 1 MiB were held with no timeout. Now messages are
capped (RESOURCE_EXHAUSTED on the declared length), the stream window is 64 KiB,
frames 16 KiB, and a header block over ``max_header_list`` ends the connection.
"""

from __future__ import annotations

import contextlib

import trio

from .conftest import RSS_GROWTH_KB
from .helpers import (
    ENHANCE_YOUR_CALM,
    GRPC_HEADERS,
    PREFACE,
    SETTINGS_EMPTY,
    Outcome,
    RawH2,
    ServerProcess,
    frame,
    read_goaway,
    watching,
)


async def test_big_messages_are_refused_on_their_declared_length(server: ServerProcess) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        for _ in range(4):
            client = await RawH2.connect(server.port)
            sids = []
            for _ in range(34):
                sid = client.h2.get_next_available_stream_id()
                client.h2.send_headers(sid, list(GRPC_HEADERS))
                # 30 MiB declared, the start sent, the rest never comes.
                client.h2.send_data(sid, b"\0\x01\xe0\0\0" + bytes(1_000))
                client.outcomes[sid] = Outcome()
                sids.append(sid)
            await client.flush()
            await client.pump(5, until=lambda: all(client.done(s) for s in sids))  # noqa: B023
            assert {client.outcomes[s].grpc_status for s in sids} == {8}  # RESOURCE_EXHAUSTED
            client.close()
        await watcher.wait_more()
        report = await server.wait_for(lambda r: r["open_connections"] == 1)
    assert report["messages_too_large"] == 4 * 34
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_a_stream_flooded_with_data_keeps_nothing(server: ServerProcess) -> None:
    """5 MB of empty messages on one stream: refused at the second, the rest discarded."""
    rss = server.rss_kb()
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", server.port))
    client = RawH2(sock)
    client.h2.initiate_connection()
    client.h2.send_headers(1, list(GRPC_HEADERS))
    await sock.send(client.h2.data_to_send())
    body = frame(0x0, 0, 1, bytes(16_000))  # 3,200 empty messages per frame
    with trio.move_on_after(3):
        for _ in range(320):
            try:
                await sock.send(body)
            except OSError:
                break
    client.outcomes[1] = Outcome()
    await client.pump(3, until=lambda: client.done(1))
    sock.close()
    assert client.outcomes[1].grpc_status == 3  # INVALID_ARGUMENT
    assert server.alive
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_a_header_block_of_many_continuations_is_cut(server: ServerProcess) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        for _ in range(10):
            sock = trio.socket.socket()
            await sock.connect(("127.0.0.1", server.port))
            block = frame(0x1, 0, 1, b"\x00" * 16_000)  # HEADERS without END_HEADERS
            block += frame(0x9, 0, 1, b"\x00" * 16_000) * 63  # CONTINUATION
            await sock.send(PREFACE + SETTINGS_EMPTY)
            with trio.move_on_after(2):
                with contextlib.suppress(OSError):
                    await sock.send(block)
            goaway, closed = await read_goaway(sock)
            sock.close()
            assert (goaway, closed) == (ENHANCE_YOUR_CALM, True)
        await watcher.wait_more()
        report = await server.wait_for(lambda r: r["open_connections"] == 1)
    assert report["floods_header_block"] == 10
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_headers_over_the_list_size_end_the_connection(server: ServerProcess) -> None:
    client = await RawH2.connect(server.port)
    client.request([*GRPC_HEADERS, *[(f"x-pad-{i}".encode(), b"v" * 100) for i in range(100)]])
    await client.flush()
    await client.pump(3)
    client.close()
    assert client.goaway is not None or client.closed
    assert server.alive
