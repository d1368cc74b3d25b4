"""The lean WebSocket server path: wsproto over a trio stream, one write per batch.

trio-websocket sends each message with its own ``send_all`` (a scheduler round trip and a
system call per frame). A simulated venue publishing tens of thousands of frames per second
would then be the bottleneck of every benchmark. Here ``send_many`` serializes a whole batch
and writes it at once. wsproto does the handshake, the control frames and the reading; the
data frames of a batch are framed here (``text_frame``): wsproto spends about 3 µs of
Python on each ``send(TextMessage)``, a third of what a replay may spend per frame at
100 k frames/s, while an unmasked server text frame with no extension negotiated (this
server accepts none) is a 2-10 byte header and the UTF-8 payload. Tests hold the two
byte-equal at every length boundary.
"""

from __future__ import annotations

import contextlib
import struct
from collections import deque
from collections.abc import Sequence
from typing import Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from dragonflybot.errors import TransportError
from dragonflybot.sim.transport import CLOSE_TIMEOUT, ConnectionHandler, ServerSocket

_CHUNK: Final = 65536
_MAX_MESSAGE: Final = 1 << 20
HANDSHAKE_TIMEOUT: Final = 10.0
_FIN_TEXT: Final = 0x81
_LEN16: Final = struct.Struct("!BBH").pack
_LEN64: Final = struct.Struct("!BBQ").pack


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame (RFC 6455 5.2) as a server with no extension sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _LEN16(_FIN_TEXT, 126, size) + payload
    return _LEN64(_FIN_TEXT, 127, size) + payload


class _LeanSocket:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._ready: deque[str] = deque()
        self._parts: list[str] = []
        self._size = 0
        self._lock = trio.Lock()
        self._closed: str | None = None

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._closed = self._closed or "connection lost"
                raise TransportError(f"client gone: {exc}") from exc

    def _frame(self, event: TextMessage | CloseConnection) -> bytes:
        try:
            return self._ws.send(event)
        except LocalProtocolError as exc:
            raise TransportError(f"connection is closing: {exc}") from exc

    async def send_many(self, texts: Sequence[str]) -> None:
        if self._closed is not None:
            raise TransportError(f"cannot send: {self._closed}")
        if self._ws.state is not ConnectionState.OPEN:
            raise TransportError(f"connection is closing: {self._ws.state.name}")
        await self._write(b"".join([text_frame(t) for t in texts]))

    async def receive(self) -> str:
        while not self._ready:
            if self._closed is not None:
                raise TransportError(self._closed)
            try:
                data = await self._stream.receive_some(_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._closed = "connection lost"
                raise TransportError(self._closed) from exc
            try:
                self._ws.receive_data(data or None)
            except RemoteProtocolError as exc:
                self._closed = f"protocol error: {exc}"
                raise TransportError(self._closed) from exc
            await self._process()
        return self._ready.popleft()

    async def _process(self) -> None:
        replies = b""
        for event in self._ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                part = (
                    event.data
                    if isinstance(event, TextMessage)
                    else bytes(event.data).decode("utf-8", "replace")
                )
                self._parts.append(part)
                self._size += len(part)
                if self._size > _MAX_MESSAGE:
                    self._closed = "message too big"
                    replies += self._frame(CloseConnection(code=1009, reason="message too big"))
                    break
                if event.message_finished:
                    self._ready.append("".join(self._parts))
                    self._parts.clear()
                    self._size = 0
            elif isinstance(event, Ping):
                replies += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    replies += self._ws.send(event.response())
                self._closed = f"client closed (code {event.code})"
        if replies:
            await self._write(replies)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        with trio.move_on_after(CLOSE_TIMEOUT):
            if self._ws.state is ConnectionState.OPEN:
                with contextlib.suppress(TransportError):
                    await self._write(self._frame(CloseConnection(code=code, reason=reason)))
        self._closed = self._closed or "closed by server"
        await trio.aclose_forcefully(self._stream)

    async def abort(self) -> None:
        self._closed = self._closed or "dropped by server"
        await trio.aclose_forcefully(self._stream)


class _LeanRequest:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection, request: Request) -> None:
        self._stream = stream
        self._ws = ws
        self._request = request

    @property
    def target(self) -> str:
        return self._request.target

    async def accept(self) -> ServerSocket:
        await self._stream.send_all(self._ws.send(AcceptConnection()))
        return _LeanSocket(self._stream, self._ws)

    async def reject(self, status: int, body: str) -> None:
        payload = body.encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(payload))]
        data = self._ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += self._ws.send(RejectData(data=payload, body_finished=True))
        try:
            await self._stream.send_all(data)
        finally:
            await trio.aclose_forcefully(self._stream)


async def _read_request(stream: trio.SocketStream, ws: WSConnection) -> Request | None:
    while True:
        for event in ws.events():
            return event if isinstance(event, Request) else None
        data = await stream.receive_some(_CHUNK)
        if not data:
            return None
        ws.receive_data(data)


async def serve_wsproto(
    handler: ConnectionHandler,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve with the lean wsproto path until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)

    async def connection(stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            request = None
            with trio.move_on_after(HANDSHAKE_TIMEOUT):
                request = await _read_request(stream, ws)
            if request is not None:
                await handler(_LeanRequest(stream, ws, request))
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])
