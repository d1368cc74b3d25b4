"""The race of the purerpc era: a stream writing while the writer task is mid-write.

Then a stream wrote to the socket around purerpc's writer and a connection hung. Now
no stream holds the socket: a stream only frames into the connection's outbox and the
writer task alone writes (``Connection._writer``), so the race is impossible by
construction. This test makes the writer stop in the middle of a socket write, opens a second
stream meanwhile (its headers and first Summary are framed while the write is
stopped), then lets the write finish: both streams get every byte whole and in order,
and nothing hangs.
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
            await wait_for(lambda: len(conn._outbox) > 0)
            assert conn._sending > 0
            assert not conn.drained
            gate.release.set()
            await client.read_until(2)
            await h.push(numbered("binance", 3, levels=DEPTH))
            await client.read_until(3)
        sock.close()
    first, second = client.bids.values()
    assert first == [1, 2, 3]
    assert second == [2, 3]
