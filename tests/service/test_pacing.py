"""A client that stops reading: the server keeps O(1) per stream and resumes with the newest.

The client here is a bare h2 connection advertising a 2 GiB window (what purerpc's
own client does, in spirit), so HTTP/2 flow control never holds the server back:
only the server's pacing (next message only once the previous one left the process)
and TCP_NOTSENT_LOWAT (a small unsent backlog in the kernel) do.
"""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio
import trio.lowlevel

from dragonflybot.core.merge import merge
from dragonflybot.service.messages import Summary
from dragonflybot.service.summary import encode_summary

from .conftest import numbered, serving

DEPTH = 50  # ~3 KB per Summary: 2000 states are 6 MB, more than any socket buffer


class RawClient:
    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1},
        )
        self.buffer = b""
        self.prices: list[int] = []

    async def start_stream(self) -> None:
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(2**30)
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/orderbook.OrderbookAggregator/BookSummary"),
                (":authority", "test"),
                ("te", "trailers"),
                ("content-type", "application/grpc"),
            ],
        )
        self.h2.send_data(sid, b"\0\0\0\0\0", end_stream=True)
        await self.sock.send(self.h2.data_to_send())

    async def read_for(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            while True:
                data = await self.sock.recv(1 << 20)
                if not data:
                    return
                for event in self.h2.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                        self._messages(event.data)
                out = self.h2.data_to_send()
                if out:
                    await self.sock.send(out)

    def _messages(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            (length,) = struct.unpack(">I", self.buffer[1:5])
            if len(self.buffer) < 5 + length:
                return
            summary = Summary.FromString(self.buffer[5 : 5 + length])
            self.buffer = self.buffer[5 + length :]
            self.prices.append(round(summary.bids[0].price))


async def test_a_stalled_client_costs_one_message_and_gets_the_newest_on_resume() -> None:
    published = 2000
    async with serving(depth=DEPTH) as h:
        await h.push(numbered("binance", 1, levels=DEPTH))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = RawClient(sock)
        await client.start_stream()
        await client.read_for(0.2)  # the first Summary, then stall
        assert client.prices == [1]
        most_buffered = 0
        for k in range(2, published + 1):
            await h.send.send(numbered("binance", k, levels=DEPTH))
            await trio.lowlevel.checkpoint()
            (connection,) = h.server.connections()
            most_buffered = max(most_buffered, connection.buffered_bytes)
        # Never more than one Summary (plus framing) waiting inside the server process.
        one = len(encode_summary(merge([numbered("binance", published, levels=DEPTH)], DEPTH)))
        assert most_buffered <= one + 64
        await client.read_for(1.0)
        sock.close()
    assert client.prices[-1] == published
    assert client.prices == sorted(set(client.prices))
    # What reached the client meanwhile was what the kernel buffers held, not the history.
    assert len(client.prices) < published / 4
