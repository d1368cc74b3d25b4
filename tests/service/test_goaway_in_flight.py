"""Frames the client sent before it saw our GOAWAY are not a protocol error.

Found by the 1,000-client fan-out benchmark: grpcio clients got GOAWAY(PROTOCOL_ERROR)
from the service ("Invalid input ConnectionInputs.RECV_WINDOW_UPDATE in state
ConnectionState.CLOSED"). On a graceful close the server ends every stream, sends
GOAWAY(NO_ERROR) and keeps reading until its bytes are out; h2's connection state is
CLOSED from the moment GOAWAY is framed and it calls any frame but GOAWAY a protocol
error, so a client's WINDOW_UPDATE acknowledging the last Summary, or a PING, in flight
at that moment got a second GOAWAY, with PROTOCOL_ERROR, and was counted as a client
that broke HTTP/2. Here the server's writer is held mid-write while the GOAWAY waits in
its outbox (so its read loop is still reading), the client sends a WINDOW_UPDATE and a
PING, then the write goes on: the client sees one GOAWAY, NO_ERROR.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import trio

import dragonflybot.service.connection as connection_module
import dragonflybot.service.server as server_module
from dragonflybot.service.sendqueue import SendQueue

from .conftest import numbered, serving, wait_for
from .test_connection import _headers
from .test_writer_race import GatedSend


async def test_frames_in_flight_after_our_goaway_are_not_a_protocol_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections: list[Any] = []
    gates: list[GatedSend] = []

    class Gated(connection_module.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            gate = GatedSend(self._sock)
            self._sock = gate
            self._queue = SendQueue(None)  # every byte through the (gated) writer task
            gates.append(gate)
            connections.append(self)

    monkeypatch.setattr(server_module, "Connection", Gated)
    async with serving() as h:
        await h.push(numbered("binance", 1))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        client.send_headers(1, _headers())
        client.send_data(1, b"\0\0\0\0\0", end_stream=True)
        await sock.send(client.data_to_send())
        events: list[h2.events.Event] = []
        with trio.fail_after(10):
            while not any(isinstance(e, h2.events.DataReceived) for e in events):
                events += client.receive_data(await sock.recv(65536))
            (conn,), (gate,) = connections, gates
            gate.closed = True
            h.server.shutdown()
            await gate.mid_write.wait()
            # The stream's end is stuck in a socket write; the GOAWAY follows it into
            # the outbox while the read loop still reads.
            await wait_for(lambda: conn._h2.state_machine.state.name == "CLOSED")
            seen = conn._guard.frames
            client.acknowledge_received_data(4096, 1)  # not due yet: force the update
            client.increment_flow_control_window(1 << 16)
            client.ping(b"in-fligh")
            await sock.send(client.data_to_send())
            await wait_for(lambda: conn._guard.frames >= seen + 2)
            gate.release.set()
            while data := await sock.recv(65536):
                events += client.receive_data(data)
        sock.close()
        assert h.server.stats.protocol_errors == 0
    goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert [g.error_code for g in goaways] == [h2.errors.ErrorCodes.NO_ERROR]
