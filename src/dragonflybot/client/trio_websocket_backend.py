"""The library WebSocket client: trio-websocket behind the ``MessageStream`` interface.

Kept beside the lean wsproto backend as the reference implementation (its behaviour is what the
shared test suite pins down) and for connections that are not on the hot path.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import trio
import trio_websocket

from dragonflybot.client.tls import default_ssl_context
from dragonflybot.client.wsproto_backend import RECEIVE_CHUNK, describe
from dragonflybot.client.wsurl import parse_ws_url
from dragonflybot.errors import TransportError

# Messages parsed ahead of the consumer; a small buffer lets the reader task run a few frames
# ahead without letting a stalled consumer hold an unbounded backlog.
_MESSAGE_QUEUE_SIZE = 64


def _closed(exc: trio_websocket.ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "connection closed"
    detail = f": {reason.reason}" if reason.reason else ""
    return f"connection closed (code {reason.code}{detail})"


class TrioWebsocketStream:
    """A ``MessageStream`` over a ``trio_websocket.WebSocketConnection``."""

    def __init__(
        self, connection: trio_websocket.WebSocketConnection, url: str, disconnect_timeout: float
    ) -> None:
        self._connection = connection
        self._url = url
        self._disconnect_timeout = disconnect_timeout
        self._last_received = trio.current_time()

    @property
    def url(self) -> str:
        return self._url

    @property
    def last_received(self) -> float:
        """The last message or pong (the library answers pings without telling us)."""
        return self._last_received

    async def ping(self) -> None:
        """Send a ping and wait for its pong (the caller bounds the wait)."""
        try:
            await self._connection.ping()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportError(f"{self._url}: cannot ping, {_closed(exc)}") from exc
        self._last_received = trio.current_time()

    async def send(self, message: str) -> None:
        try:
            await self._connection.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise TransportError(f"{self._url}: cannot send, {_closed(exc)}") from exc

    async def receive(self) -> str | bytes:
        try:
            message = await self._connection.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportError(f"{self._url}: {_closed(exc)}") from exc
        self._last_received = trio.current_time()
        return message

    async def aclose(self) -> None:
        """Shielded and bounded, like the wsproto backend; the library then drops the socket."""
        with trio.move_on_after(self._disconnect_timeout, shield=True):
            with suppress(trio_websocket.HandshakeError, trio.BrokenResourceError, OSError):
                await self._connection.aclose()


@asynccontextmanager
async def open_trio_websocket_stream(
    url: str,
    *,
    connect_timeout: float,
    max_message_size: int,
    ssl_context: ssl.SSLContext | None,
    disconnect_timeout: float,
) -> AsyncIterator[TrioWebsocketStream]:
    """Connect within ``connect_timeout``; close on exit; connect failures become
    ``TransportError`` while errors raised by the caller's block pass through untouched."""
    target = parse_ws_url(url)
    context = (ssl_context or default_ssl_context()) if target.secure else None
    connected = False
    body_error: BaseException | None = None
    # One deadline bounds the library's connect and, later, its teardown: after a handshake
    # timeout, or a close handshake with a peer that never drops TCP, trio-websocket's reader
    # task would otherwise wait on the socket forever and keep its nursery open.
    with trio.move_on_after(connect_timeout) as deadline:
        try:
            async with trio_websocket.open_websocket_url(
                url,
                context,
                max_message_size=max_message_size,
                message_queue_size=_MESSAGE_QUEUE_SIZE,
                receive_buffer_size=RECEIVE_CHUNK,
                connect_timeout=math.inf,
                disconnect_timeout=disconnect_timeout,
            ) as connection:
                connected = True
                deadline.deadline = math.inf
                stream = TrioWebsocketStream(connection, url, disconnect_timeout)
                try:
                    yield stream
                except BaseException as exc:
                    body_error = exc
                    raise
                finally:
                    await stream.aclose()
                    deadline.deadline = trio.current_time() + disconnect_timeout
        except trio_websocket.ConnectionRejected as exc:
            if connected:
                raise
            raise TransportError(f"{url}: handshake rejected with HTTP {exc.status_code}") from exc
        except (trio_websocket.HandshakeError, trio.BrokenResourceError, OSError) as exc:
            if connected:
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise TransportError(f"{url}: cannot connect: {describe(cause)}") from exc
    if deadline.cancelled_caught:
        if not connected:
            raise TransportError(f"{url}: not connected within {connect_timeout} s")
        if body_error is not None:
            # The teardown deadline replaced the caller's exception with Cancelled: restore it.
            raise body_error
