"""The lean WebSocket client: wsproto driven straight over a trio stream.

The receive path is the pipeline's measured bottleneck. trio-websocket runs a reader task that
reads 4 KiB at a time and hands every message to the consumer through a memory channel, which
costs a full scheduler round trip per message. Here the consumer's own ``receive()`` reads up to
64 KiB, parses every complete message in that chunk and then serves them from a deque, so one
system call and one trip through the scheduler serve many frames.

Even so, wsproto itself costs several times a plain header parse and ``bytes.decode()`` per
venue frame (docs/performance.md, "Design measurements"). So after the handshake the bytes go
through ``frames.FrameSplitter``: final unfragmented text and binary frames are decoded there,
and every other frame is given to wsproto whole, one at a time, so that wsproto still answers pings,
assembles fragments, handles the close and judges every protocol error exactly as before. Once
the connection leaves the OPEN state (or the peer broke the protocol) wsproto gets everything.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import cast

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from dragonflybot.client.frames import FrameSplitter, Stop
from dragonflybot.client.tls import default_ssl_context
from dragonflybot.client.wsurl import WebSocketTarget, parse_ws_url
from dragonflybot.errors import TransportError

RECEIVE_CHUNK = 64 * 1024


def describe(exc: BaseException) -> str:
    """Name the real failure: trio hides ssl and socket errors behind BrokenResourceError."""
    inner = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else None
    shown = inner if inner is not None else exc
    return f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__


class WsprotoStream:
    """One client WebSocket connection over any trio byte stream.

    One task receives at a time; any task may send. Pings and the peer's close frame are answered
    from inside ``receive()``, which a feed is always waiting in. ``receive()`` only checks for
    cancellation while it serves messages already parsed: the scheduler is visited once per network
    read (at most 64 KiB of frames), not once per frame.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        url: str,
        *,
        max_message_size: int,
        disconnect_timeout: float,
    ) -> None:
        self._stream = stream
        self._url = url
        self._max_message_size = max_message_size
        self._disconnect_timeout = disconnect_timeout
        self._ws = WSConnection(ConnectionType.CLIENT)
        # None once wsproto takes every byte (handshake failed, closing, protocol error).
        self._splitter: FrameSplitter | None = FrameSplitter(max_message_size)
        self._ready: deque[str | bytes] = deque()
        self._fragments: list[str | bytes] = []
        self._fragments_size = 0
        self._closed_reason: str | None = None
        self._send_lock = trio.Lock()
        self._reading = False
        self._released = False
        self._last_received = trio.current_time()

    @property
    def url(self) -> str:
        return self._url

    async def handshake(self, target: WebSocketTarget) -> None:
        """Send the upgrade request and wait for the answer (the caller bounds the wait)."""
        request = Request(host=target.host_header, target=target.resource)
        await self._send_event(request)
        after_head = b""
        while self._ws.state is ConnectionState.CONNECTING:
            data = await self._read()
            if not data:
                raise TransportError(f"{self._url}: connection closed during the handshake")
            after_head = self._feed_handshake(data)
        accepted = self._ws.connection is not None
        replies = self._handle_events()
        if accepted:
            # Frames sent right behind the 101 response arrive with it: keep them for receive().
            replies += self._ingest(after_head)
        else:
            self._splitter = None
        await self._reply(replies)
        if not accepted:
            reason = self._closed_reason or "handshake failed"
            raise TransportError(f"{self._url}: {reason}")

    @property
    def last_received(self) -> float:
        return self._last_received

    async def ping(self) -> None:
        if self._closed_reason is not None:
            await trio.lowlevel.checkpoint()
            raise TransportError(f"{self._url}: cannot ping, {self._closed_reason}")
        await self._send_event(Ping(payload=b"dragonflybot"))

    async def send(self, message: str) -> None:
        if self._closed_reason is not None:
            await trio.lowlevel.checkpoint()
            raise TransportError(f"{self._url}: cannot send, {self._closed_reason}")
        await self._send_event(TextMessage(data=message))

    async def receive(self) -> str | bytes:
        ready = self._ready
        if ready:
            await trio.lowlevel.checkpoint_if_cancelled()
            return ready.popleft()
        while not ready:
            if self._closed_reason is not None:
                await trio.lowlevel.checkpoint()
                raise TransportError(f"{self._url}: {self._closed_reason}")
            data = await self._read()
            await self._reply(self._ingest(data if data else None))
        return ready.popleft()

    async def aclose(self) -> None:
        """Close handshake bounded by the disconnect timeout, shielded so that a cancelled feed
        still says goodbye, then drop the socket whatever happened."""
        if self._released:
            await trio.lowlevel.checkpoint()
            return
        self._released = True
        with trio.move_on_after(self._disconnect_timeout, shield=True), suppress(TransportError):
            if self._ws.state is ConnectionState.OPEN:
                await self._send_event(CloseConnection(code=CloseReason.NORMAL_CLOSURE))
            # Wait for the peer's close frame unless another task is reading (it will see it).
            while self._ws.state is ConnectionState.LOCAL_CLOSING and not self._reading:
                data = await self._read()
                await self._reply(self._ingest(data if data else None))
        if self._closed_reason is None:
            self._closed_reason = "connection closed locally"
        await trio.aclose_forcefully(self._stream)

    def _feed_handshake(self, data: bytes) -> bytes:
        """Give wsproto the HTTP response up to its end; return the bytes behind it.

        Fed one line at a time, wsproto's HTTP parser completes the response exactly at the end
        of a piece, so no frame bytes ever sit in wsproto's buffer when the splitter takes over:
        frames sent together with the 101 (even one cut in the middle) are neither lost nor
        seen twice. A refusal's body belongs to wsproto as well.
        """
        start = 0
        while self._ws.state is ConnectionState.CONNECTING:
            if start == len(data):
                return b""
            end = data.find(b"\n", start) + 1 or len(data)
            self._feed(data[start:end])
            start = end
        if self._ws.connection is None:
            if start < len(data):
                self._feed(data[start:])
            return b""
        return data[start:]

    def _ingest(self, data: bytes | None) -> bytes:
        """Take one read (None: the end of the stream); return the replies it calls for."""
        splitter = self._splitter
        if (
            splitter is None
            or data is None
            or self._closed_reason is not None
            or self._ws.state is not ConnectionState.OPEN
        ):
            if splitter is not None:
                self._hand_over(splitter)
            self._feed(data)
            return self._handle_events()
        splitter.feed(data)
        ready = self._ready
        replies = b""
        while True:
            frame = splitter.split(ready)
            if frame is Stop.NEED_DATA:
                return replies
            if isinstance(frame, bytes):
                # One whole frame: wsproto's buffer is empty again afterwards.
                self._feed(frame)
                replies += self._handle_events()
                if self._closed_reason is None and self._ws.state is ConnectionState.OPEN:
                    continue
            elif frame is Stop.TOO_BIG:
                replies += self._close_too_big()
            self._hand_over(splitter)
            return replies + self._handle_events()

    def _hand_over(self, splitter: FrameSplitter) -> None:
        """From here on wsproto gets every byte, starting with what the splitter still holds."""
        self._splitter = None
        rest = splitter.detach()
        # A closed wsproto refuses data; it would ignore what follows a close frame anyway.
        if rest and self._ws.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            self._feed(rest)

    def _feed(self, data: bytes | None) -> None:
        try:
            self._ws.receive_data(data)
        except RemoteProtocolError as exc:
            self._closed_reason = f"protocol error from peer: {exc}"
            raise TransportError(f"{self._url}: {self._closed_reason}") from exc

    def _handle_events(self) -> bytes:
        """Deal with wsproto's events; returns the bytes of the replies they call for."""
        ready = self._ready
        limit = self._max_message_size
        replies = b""
        for event in self._ws.events():
            data: str | bytes
            if isinstance(event, TextMessage):
                data = event.data
            elif isinstance(event, BytesMessage):
                data = bytes(event.data)
            else:
                replies += self._on_control(event)
                continue
            if self._closed_reason is not None:
                continue
            if event.message_finished and not self._fragments and len(data) <= limit:
                ready.append(data)
            else:
                replies += self._add_fragment(data, event)
        return replies

    async def _reply(self, replies: bytes) -> None:
        if replies:
            # A peer gone deaf may still have sent data we have not read yet: a failed pong or
            # close reply is not the end; the read side reports the end, after the messages.
            with suppress(TransportError):
                await self._write(replies)

    def _on_control(self, event: Event) -> bytes:
        """Handle a non-data event; returns the bytes of the reply it calls for, if any."""
        if isinstance(event, Ping):
            if self._ws.state is ConnectionState.OPEN:
                return self._ws.send(event.response())
        elif isinstance(event, CloseConnection):
            if self._closed_reason is None:
                reason = f": {event.reason}" if event.reason else ""
                self._closed_reason = f"connection closed by peer (code {event.code}{reason})"
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                return self._ws.send(event.response())
        elif isinstance(event, RejectConnection):
            self._closed_reason = f"handshake rejected with HTTP {event.status_code}"
        return b""

    def _add_fragment(self, data: str | bytes, event: TextMessage | BytesMessage) -> bytes:
        """Collect a message that arrives in pieces; returns a close frame if it grows too big."""
        self._fragments.append(data)
        self._fragments_size += len(data)
        if self._fragments_size > self._max_message_size:
            return self._close_too_big()
        if event.message_finished:
            message: str | bytes
            if isinstance(event, TextMessage):
                message = "".join(cast(list[str], self._fragments))
            else:
                message = b"".join(cast(list[bytes], self._fragments))
            self._fragments.clear()
            self._fragments_size = 0
            self._ready.append(message)
        return b""

    def _close_too_big(self) -> bytes:
        """Give up on an oversized message; returns the close frame (1009) to send."""
        self._fragments.clear()
        self._fragments_size = 0
        self._closed_reason = f"message larger than {self._max_message_size} bytes"
        return self._ws.send(
            CloseConnection(code=CloseReason.MESSAGE_TOO_BIG, reason="message too big")
        )

    async def _send_event(self, event: Event) -> None:
        # Frames are produced under the lock so that nothing can follow our close frame.
        async with self._send_lock:
            try:
                data = self._ws.send(event)
            except LocalProtocolError as exc:
                reason = self._closed_reason or f"connection is {self._ws.state.name}"
                raise TransportError(f"{self._url}: cannot send, {reason}") from exc
            await self._write_locked(data)

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:
            await self._write_locked(data)

    async def _write_locked(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise TransportError(f"{self._url}: send failed: {describe(exc)}") from exc

    async def _read(self) -> bytes:
        self._reading = True
        try:
            # bytes() of a bytes object is the object itself: no copy on the hot path.
            data = bytes(await self._stream.receive_some(RECEIVE_CHUNK))
            self._last_received = trio.current_time()
            return data
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed_reason = self._closed_reason or f"connection broken ({describe(exc)})"
            raise TransportError(f"{self._url}: receive failed: {describe(exc)}") from exc
        finally:
            self._reading = False


async def _connect(
    url: str,
    target: WebSocketTarget,
    *,
    ssl_context: ssl.SSLContext | None,
    max_message_size: int,
    disconnect_timeout: float,
) -> WsprotoStream:
    tcp = await trio.open_tcp_stream(target.host, target.port)
    stream: trio.abc.Stream = tcp
    try:
        if target.secure:
            # https_compatible: a peer that drops TCP without TLS close_notify is reported as a
            # plain end of stream; the WebSocket close handshake already says whether that was OK.
            tls = trio.SSLStream(
                tcp,
                ssl_context or default_ssl_context(),
                server_hostname=target.host,
                https_compatible=True,
            )
            stream = tls
            await tls.do_handshake()
        connection = WsprotoStream(
            stream, url, max_message_size=max_message_size, disconnect_timeout=disconnect_timeout
        )
        await connection.handshake(target)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return connection


@asynccontextmanager
async def open_wsproto_stream(
    url: str,
    *,
    connect_timeout: float,
    max_message_size: int,
    ssl_context: ssl.SSLContext | None,
    disconnect_timeout: float,
) -> AsyncIterator[WsprotoStream]:
    """Connect (TCP, TLS for wss://, upgrade) within ``connect_timeout``; close on exit."""
    target = parse_ws_url(url)
    try:
        with trio.fail_after(connect_timeout):
            connection = await _connect(
                url,
                target,
                ssl_context=ssl_context,
                max_message_size=max_message_size,
                disconnect_timeout=disconnect_timeout,
            )
    except trio.TooSlowError as exc:
        raise TransportError(f"{url}: not connected within {connect_timeout} s") from exc
    except (trio.BrokenResourceError, OSError) as exc:
        raise TransportError(f"{url}: cannot connect: {describe(exc)}") from exc
    try:
        yield connection
    finally:
        await connection.aclose()
