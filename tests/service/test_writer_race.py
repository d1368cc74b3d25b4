"""The race of the purerpc era: a stream writing while the writer task is mid-write.

Then a stream wrote to the socket around purerpc's writer and a connection hung. Now
every byte leaves through ``Connection._write``, where ``SendQueue.write`` decides:
written at once by the stream's task only while nothing is queued and no write of the
writer task is in flight, else queued for the writer task. The first test makes the
writer stop in the middle of a socket write (direct writes off, as over TLS), opens a
second stream meanwhile (its headers and first Summary are framed while the write is
stopped), then lets the write finish: both streams get every byte whole and in order,
and nothing hangs. The second does the same with direct writes on: a direct write the
kernel takes only part of leaves the rest to the writer task, which is stopped
mid-write; the second stream's bytes must then queue behind it, never go direct.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio

import dragonflybot.service.connection as connection_module
import dragonflybot.service.server as server_module
from dragonflybot.service.messages import Summary
from dragonflybot.service.sendqueue import SendQueue

from .conftest import numbered, serving, wait_for
from .test_connection import _headers

DEPTH = 50


class GatedSend:
    """Wraps the connection's socket: while ``closed``, a send stops mid-write."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.closed = False
        self.mid_write = trio.Event()
        self.release = trio.Event()

    async def send(self, data: bytes) -> None:
        if self.closed:
            self.closed = False
            self.mid_write.set()
            await self.release.wait()
        await self._inner.send(data)

    async def __aenter__(self) -> GatedSend:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class PartialDirect:
    """A direct send whose next call, once ``short`` is set, lets the kernel take 10 bytes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.short = False
        self.calls = 0

    def __call__(self, data: bytes) -> int:
        self.calls += 1
        if self.short:
            self.short = False
            return int(self._inner(data[:10]))
        return int(self._inner(data))


class TwoStreamClient:
    """Two BookSummary streams on one HTTP/2 connection, each decoded on its own."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.buffers: dict[int, bytes] = {}
        self.bids: dict[int, list[int]] = {}

    async def start(self) -> None:
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(1 << 24)
        await self.add_stream()

    async def add_stream(self) -> None:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, _headers())
        self.h2.send_data(sid, b"\0\0\0\0\0", end_stream=True)
        self.buffers[sid] = b""
        self.bids[sid] = []
        await self.sock.send(self.h2.data_to_send())

    async def read_until(self, last: int) -> None:
        while any(not b or b[-1] != last for b in self.bids.values()):
            data = await self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    self._messages(event.stream_id, event.data)
            out = self.h2.data_to_send()
            if out:
                await self.sock.send(out)

    def _messages(self, sid: int, data: bytes) -> None:
        buffer = self.buffers[sid] + data
        while len(buffer) >= 5:
            (length,) = struct.unpack(">I", buffer[1:5])
            if len(buffer) < 5 + length:
                break
            summary = Summary.FromString(buffer[5 : 5 + length])
            buffer = buffer[5 + length :]
            self.bids[sid].append(round(summary.bids[0].price))
        self.buffers[sid] = buffer


async def test_a_stream_framing_while_the_writer_is_mid_write_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections: list[Any] = []
    gates: list[GatedSend] = []

    class Gated(connection_module.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            gate = GatedSend(self._sock)
            self._sock = gate
            self._queue = SendQueue(None)  # every byte through the writer task
            gates.append(gate)
            connections.append(self)

    monkeypatch.setattr(server_module, "Connection", Gated)
    async with serving(depth=DEPTH) as h:
        await h.push(numbered("binance", 1, levels=DEPTH))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TwoStreamClient(sock)
        await client.start()
        with trio.fail_after(10):
            await client.read_until(1)
            (conn,), (gate,) = connections, gates
            gate.closed = True
            await h.push(numbered("binance", 2, levels=DEPTH))
            await gate.mid_write.wait()
            # The writer holds the first stream's Summary in a socket write; a second
            # stream opens and sends its headers and Summary meanwhile: into the
            # outbox, never onto the socket.
            await client.add_stream()
            await wait_for(lambda: conn._queue.queued > 0)
            assert conn._queue.in_flight > 0
            assert not conn.drained
            gate.release.set()
            await client.read_until(2)
            await h.push(numbered("binance", 3, levels=DEPTH))
            await client.read_until(3)
        sock.close()
    first, second = client.bids.values()
    assert first == [1, 2, 3]
    assert second == [2, 3]


async def test_a_direct_write_never_goes_around_the_writer_mid_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections: list[Any] = []
    gates: list[GatedSend] = []
    directs: list[PartialDirect] = []

    class Gated(connection_module.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            gate = GatedSend(self._sock)
            self._sock = gate
            raw = connection_module._raw_send(self._raw)
            assert raw is not None
            direct = PartialDirect(raw)
            self._queue = SendQueue(direct)
            gates.append(gate)
            directs.append(direct)
            connections.append(self)

    monkeypatch.setattr(server_module, "Connection", Gated)
    async with serving(depth=DEPTH) as h:
        await h.push(numbered("binance", 1, levels=DEPTH))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TwoStreamClient(sock)
        await client.start()
        with trio.fail_after(10):
            await client.read_until(1)
            (conn,), (gate,), (direct,) = connections, gates, directs
            assert conn._queue.direct_bytes > 0  # the first Summary went direct
            gate.closed = True
            direct.short = True
            await h.push(numbered("binance", 2, levels=DEPTH))
            # 10 bytes went direct; the rest is the writer task's, stopped mid-write.
            await gate.mid_write.wait()
            calls = direct.calls
            await client.add_stream()
            await wait_for(lambda: conn._queue.queued > 0)
            assert conn._queue.in_flight > 0
            assert direct.calls == calls  # queued behind the write in flight
            gate.release.set()
            await client.read_until(2)
            await h.push(numbered("binance", 3, levels=DEPTH))
            await client.read_until(3)
            assert direct.calls > calls  # direct again once nothing was ahead
        sock.close()
    first, second = client.bids.values()
    assert first == [1, 2, 3]
    assert second == [2, 3]
