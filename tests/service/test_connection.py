"""The connection's HTTP/2 duties towards a well-behaved client: flow control, deadlines."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import trio

from dragonflybot.service.messages import Summary

from .conftest import numbered, serving, wait_for

DEPTH = 50  # ~3 KB per Summary


def _headers(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/orderbook.OrderbookAggregator/BookSummary"),
        (":authority", "test"),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
        *(extra or []),
    ]


class TinyWindowClient:
    """Advertises a 1,000-byte stream window and returns it only after a pause."""

    def __init__(self, sock: trio.socket.SocketType, window: int) -> None:
        self.sock = sock
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
        self.buffer = b""
        self.bids: list[int] = []
        self.trailers: dict[str, str] = {}
        self.frames = 0

    async def start(self, extra: list[tuple[str, str]] | None = None) -> None:
        self.h2.initiate_connection()
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, _headers(extra))
        self.h2.send_data(sid, b"\0\0\0\0\0", end_stream=True)
        await self.sock.send(self.h2.data_to_send())

    async def read(self, messages: int) -> None:
        while len(self.bids) < messages and not self.trailers:
            data = await self.sock.recv(65536)
            assert data
            # h2 raises FlowControlError if the server ever sends past the window.
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.frames += 1
                    self._messages(event.data)
                    await trio.sleep(0.001)  # a slow reader: the window stays shut meanwhile
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    self.trailers = {k.decode(): v.decode() for k, v in event.headers}
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
            self.bids.append(round(summary.bids[0].price))


async def test_a_summary_larger_than_the_window_waits_for_window_updates() -> None:
    async with serving(depth=DEPTH) as h:
        await h.push(numbered("binance", 1, levels=DEPTH))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TinyWindowClient(sock, window=1000)
        await client.start()
        with trio.fail_after(10):
            await client.read(1)
            for k in range(2, 5):
                await h.push(numbered("binance", k, levels=DEPTH))
                await client.read(k)
        sock.close()
    # Whole, in order, each split over several DATA frames by the window.
    assert client.bids == [1, 2, 3, 4]
    assert client.frames >= 4 * 3


async def test_grpc_timeout_ends_a_stream_with_deadline_exceeded() -> None:
    async with serving(depth=5) as h:
        await h.push(numbered("binance", 1, levels=5))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TinyWindowClient(sock, window=65535)
        await client.start([("grpc-timeout", "200m")])
        with trio.fail_after(5):
            await client.read(1_000_000)  # until the trailers
        sock.close()
    assert client.bids == [1]
    assert client.trailers["grpc-status"] == "4"  # DEADLINE_EXCEEDED


async def test_a_bug_in_the_connection_costs_that_connection_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import dragonflybot.service.connection as connection_module

    def broken(headers: object) -> object:
        raise RuntimeError("a bug")

    async with serving(depth=5) as h:
        await h.push(numbered("binance", 1, levels=5))
        monkeypatch.setattr(connection_module, "check_request", broken)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TinyWindowClient(sock, window=65535)
        await client.start()
        with trio.fail_after(5):
            while await sock.recv(65536):
                pass  # until the server closes this connection
        sock.close()
        await wait_for(lambda: h.server.stats.internal_errors == 1)
        monkeypatch.undo()
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        client = TinyWindowClient(sock, window=65535)
        await client.start()
        with trio.fail_after(5):
            await client.read(1)
        sock.close()
    assert client.bids == [1]
    assert any("a bug" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_a_peer_gone_mid_write_is_a_closed_connection_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """anyio's TLS stream raises ``EndOfStream`` from ``send`` once the client has sent
    close_notify (a client that took its books and left): the connection ends quietly."""
    import anyio

    import dragonflybot.service.connection as connection_module

    real_tune = connection_module.tune_socket

    async def gone(data: bytes) -> None:
        raise anyio.EndOfStream

    def tune_then_break(stream: object) -> None:
        real_tune(stream)  # type: ignore[arg-type]
        stream.send = gone  # type: ignore[attr-defined]

    async with serving(depth=5) as h:
        await h.push(numbered("binance", 1, levels=5))
        monkeypatch.setattr(connection_module, "tune_socket", tune_then_break)
        # As over TLS: no direct writes, every byte goes through the stream's ``send``.
        monkeypatch.setattr(connection_module, "_raw_send", lambda stream: None)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        with trio.fail_after(5):
            await sock.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            while await sock.recv(65536):
                pass  # until the server closes this connection
        sock.close()
        await wait_for(lambda: h.server.connection_count == 0)
    assert h.server.stats.internal_errors == 0
    assert "failed" not in caplog.text


async def test_a_peer_gone_during_a_direct_write_is_a_closed_connection_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A direct write (``sendqueue``) that finds the peer gone (ECONNRESET, EPIPE) ends
    the connection quietly, as a failed write of the writer task does."""
    import dragonflybot.service.connection as connection_module

    def reset(data: bytes) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(connection_module, "_raw_send", lambda stream: reset)
    async with serving(depth=5) as h:
        await h.push(numbered("binance", 1, levels=5))
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", h.port))
        # The server closes with our preface unread: the kernel may answer with a reset.
        with trio.fail_after(5), contextlib.suppress(ConnectionResetError):
            await sock.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            while await sock.recv(65536):
                pass  # until the server closes this connection
        sock.close()
        await wait_for(lambda: h.server.connection_count == 0)
    assert h.server.stats.internal_errors == 0
    assert "failed" not in caplog.text


async def test_a_handler_that_never_waits_still_yields_to_the_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Direct writes skip the checkpoint after a send (a conflating stream yields while
    it waits for its next state), so a handler whose messages come without a wait must
    be made to yield: at least once per ``YIELD_EVERY`` bytes, whatever the windows.
    (A small ``YIELD_EVERY`` here: the messages must fit the loopback socket's buffers,
    or a full socket would make the stream wait, and so yield, anyway.)"""
    import dragonflybot.service.connection as connection_module

    monkeypatch.setattr(connection_module, "YIELD_EVERY", 8 * 1000)
    from dragonflybot.service import GrpcServer
    from dragonflybot.service.grpcwire import Framed, frame_message
    from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorServicer

    ticks = 0
    seen: list[int] = []
    message = Framed(frame_message(bytes(1000)))
    count = 10 * connection_module.YIELD_EVERY // 1000

    class Eager(OrderbookAggregatorServicer):  # type: ignore[misc]
        async def BookSummary(self, input_message: Any) -> Any:  # type: ignore[override]
            for _ in range(count):
                seen.append(ticks)
                yield message

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.lowlevel.checkpoint()
            ticks += 1

    server = GrpcServer([Eager()], "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        nursery.start_soon(ticker)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24}
        )
        client.initiate_connection()
        client.increment_flow_control_window(1 << 24)
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, _headers())
        client.send_data(sid, b"\0\0\0\0\0", end_stream=True)
        await sock.send(client.data_to_send())
        ended = False
        with trio.fail_after(10):
            while not ended:
                data = await sock.recv(65536)
                assert data
                ended = any(isinstance(e, h2.events.StreamEnded) for e in client.receive_data(data))
        sock.close()
        server.shutdown()
        await server.wait_closed()
        nursery.cancel_scope.cancel()  # the ticker
    assert len(seen) == count
    # Without the bound every message would be written in one run of the handler's task.
    # Ten forced yields. The ticker runs once per scheduler batch and trio reverses a
    # batch's order half the time, so two yields in a row may see the same tick: at
    # least half of them show. Without the bound they would all see one.
    assert len(set(seen)) >= 5, str(seen)


async def test_over_tls_no_write_is_direct() -> None:
    """The TLS object's writes are async: over TLS every byte goes through the writer
    task, and only a plain TCP connection gets the socket's non-blocking send."""
    import ssl

    import anyio

    from dragonflybot.service.connection import Connection
    from dragonflybot.service.sendqueue import SendQueue

    sent: list[bytes] = []

    class Plain:
        def extra(self, attribute: Any, default: Any = None) -> Any:
            if attribute is anyio.abc.SocketAttribute.raw_socket:
                return self
            raise anyio.TypedAttributeLookupError(attribute)

        def send(self, data: bytes) -> int:
            sent.append(data)
            return len(data)

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    secure = Connection({}, Plain(), tls=tls)  # type: ignore[arg-type]
    plain = Connection({}, Plain())  # type: ignore[arg-type]
    assert isinstance(secure._queue, SendQueue) and isinstance(plain._queue, SendQueue)
    assert secure._queue.write(b"abc") is True  # queued for the writer task
    assert plain._queue.write(b"abc") is False  # written at once
    assert sent == [b"abc"]
