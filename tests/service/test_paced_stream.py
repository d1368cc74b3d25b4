"""``PacedStream.send_now``: a stream's bytes go straight out, never around a write in progress."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from dragonflybot.service.pacing import PacedStream


@pytest.fixture
async def pair() -> AsyncIterator[tuple[PacedStream, trio.SocketStream]]:
    """A ``PacedStream`` over a connected loopback socket, and the peer's end."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    inner = await anyio.connect_tcp("127.0.0.1", port)
    peer = await listeners[0].accept()
    paced = PacedStream(inner, lambda: 0)
    try:
        yield paced, peer
    finally:
        await paced.aclose()
        await peer.aclose()
        await listeners[0].aclose()


async def receive_exactly(peer: trio.SocketStream, size: int) -> bytes:
    data = b""
    with trio.fail_after(5):
        while len(data) < size:
            data += await peer.receive_some(size - len(data))
    return data


async def test_send_now_writes_and_consumes_the_buffer(
    pair: tuple[PacedStream, trio.SocketStream],
) -> None:
    paced, peer = pair
    buffer = bytearray(b"summary bytes")
    paced.send_now(buffer)
    assert buffer == b""
    assert paced.bytes_sent == len(b"summary bytes")
    assert await receive_exactly(peer, 13) == b"summary bytes"


async def test_send_now_leaves_the_bytes_to_a_write_in_progress(
    pair: tuple[PacedStream, trio.SocketStream],
) -> None:
    paced, peer = pair
    big = b"a" * (8 * 1024 * 1024)  # more than the kernel buffers: the send blocks
    async with trio.open_nursery() as nursery:
        nursery.start_soon(paced.send, big)
        await trio.testing.wait_all_tasks_blocked()
        assert not paced.drained
        buffer = bytearray(b"b" * 10)
        paced.send_now(buffer)  # would interleave with the blocked write
        assert buffer == b"b" * 10
        got = await receive_exactly(peer, len(big))
    assert got == big
    paced.send_now(buffer)  # the write is done: now it goes out, after it
    assert buffer == b""
    assert await receive_exactly(peer, 10) == b"b" * 10


class GatedStream(anyio.abc.SocketStream):
    """A real socket whose ``send`` waits for ``gate``: a write held in progress."""

    def __init__(self, inner: anyio.abc.SocketStream) -> None:
        self.inner = inner
        self.gate = trio.Event()

    async def send(self, item: bytes) -> None:
        await self.gate.wait()
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self.inner.extra(anyio.abc.SocketAttribute.raw_socket)
        return sock


async def test_send_now_never_overtakes_a_write_in_progress(
    pair: tuple[PacedStream, trio.SocketStream],
) -> None:
    paced, peer = pair
    gated = GatedStream(paced._inner)
    held = PacedStream(gated, lambda: 0)
    buffer = bytearray(b"second")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(held.send, b"first")
        await trio.testing.wait_all_tasks_blocked()
        held.send_now(buffer)  # the socket has room, but "first" is not out yet
        assert buffer == b"second"
        gated.gate.set()
    held.send_now(buffer)
    assert buffer == b""
    assert await receive_exactly(peer, 11) == b"firstsecond"


async def test_send_now_keeps_what_a_full_socket_refuses(
    pair: tuple[PacedStream, trio.SocketStream],
) -> None:
    paced, peer = pair
    buffer = bytearray(b"c" * (8 * 1024 * 1024))
    paced.send_now(buffer)  # partial: the kernel takes what fits
    kept = len(buffer)
    assert 0 < kept < 8 * 1024 * 1024
    paced.send_now(buffer)  # the socket is full now: nothing taken, nothing lost
    assert len(buffer) == kept
    async with trio.open_nursery() as nursery:
        nursery.start_soon(paced.send, bytes(buffer))
        got = await receive_exactly(peer, 8 * 1024 * 1024)
    assert got == b"c" * (8 * 1024 * 1024)
