"""The simulated venues' WebSocket server seam: one interface, two backends.

``trio-websocket`` is the reference server (one socket write per frame, which caps its
rate: docs/performance.md); ``wsproto`` (``ws_lean``) writes a whole batch of frames in one
socket write, for benchmarks that must not be limited by the venue. The venue code sees
only ``PendingRequest`` and ``ServerSocket``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio
import trio_websocket

from dragonflybot.errors import TransportError


class ServerSocket(Protocol):
    """An accepted server-side WebSocket."""

    async def receive(self) -> str:
        """The next client message (binary ones decoded as UTF-8); ``TransportError`` once
        the connection is closed."""
        ...

    async def send_many(self, texts: Sequence[str]) -> None:
        """Send text frames in order; ``TransportError`` if the connection is gone."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close politely (close handshake, bounded in time)."""
        ...

    async def abort(self) -> None:
        """Drop the connection as a failing venue would."""
        ...


class PendingRequest(Protocol):
    """A handshake the venue accepts or refuses after looking at its target."""

    @property
    def target(self) -> str:
        """Request target: path and query, e.g. ``/stream?streams=ethbtc@depth@100ms``."""
        ...

    async def accept(self) -> ServerSocket: ...

    async def reject(self, status: int, body: str) -> None: ...


ConnectionHandler = Callable[[PendingRequest], Awaitable[None]]

CLOSE_TIMEOUT = 2.0


class _TrioWsSocket:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def receive(self) -> str:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportError(f"client closed: {exc.reason}") from exc
        if isinstance(message, bytes):
            return message.decode("utf-8", "replace")
        return message

    async def send_many(self, texts: Sequence[str]) -> None:
        send = self._ws.send_message
        try:
            for text in texts:
                await send(text)
        except trio_websocket.ConnectionClosed as exc:
            raise TransportError(f"client closed: {exc.reason}") from exc

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self._ws.aclose(code, reason or None)

    async def abort(self) -> None:
        # trio-websocket has no way to drop without a close frame; 1011 (internal error)
        # is what a failing server sends.
        await self.aclose(1011, "simulated connection drop")


class _TrioWsRequest:
    def __init__(self, request: trio_websocket.WebSocketRequest) -> None:
        self._request = request

    @property
    def target(self) -> str:
        return self._request.path

    async def accept(self) -> ServerSocket:
        return _TrioWsSocket(await self._request.accept())

    async def reject(self, status: int, body: str) -> None:
        await self._request.reject(status, body=body.encode())


async def serve_trio_websocket(
    handler: ConnectionHandler,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve with trio-websocket until cancelled; reports the bound port."""

    async def on_request(request: trio_websocket.WebSocketRequest) -> None:
        await handler(_TrioWsRequest(request))

    # Bind before any nursery exists, so "address in use" surfaces as a plain OSError.
    listeners = await trio.open_tcp_listeners(port, host=host)
    server = trio_websocket.WebSocketServer(on_request, listeners)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        task_status.started(server.port)
