"""Local WebSocket servers on 127.0.0.1 for the client tests.

Two kinds: a trio-websocket server (a well-behaved peer) and a raw wsproto server driven frame by
frame, for what a library server will not do on request: many frames in one TCP write, fragments
with a ping in between, dropping TCP without a close frame, never answering.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio_websocket

from dragonflybot.client import BACKENDS, Backend

from .ws_peer import RawPeer

ServerHandler = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]
RawScript = Callable[[RawPeer], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


@pytest.fixture
def ws_server(nursery: trio.Nursery) -> Callable[..., Awaitable[str]]:
    """Start a trio-websocket server running ``handler`` per connection; returns its URL."""

    async def start(
        handler: ServerHandler,
        *,
        reject_status: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> str:
        async def on_request(request: trio_websocket.WebSocketRequest) -> None:
            if reject_status is not None:
                await request.reject(reject_status)
                return
            connection = await request.accept()
            await handler(connection)

        server: trio_websocket.WebSocketServer = await nursery.start(
            partial(trio_websocket.serve_websocket, on_request, "127.0.0.1", 0, ssl_context)
        )
        scheme = "ws" if ssl_context is None else "wss"
        return f"{scheme}://127.0.0.1:{server.port}/stream?x=1"

    return start


@pytest.fixture
def raw_server(nursery: trio.Nursery) -> Callable[[RawScript], Awaitable[str]]:
    """Start a raw wsproto server running ``script`` per connection; returns its URL."""

    async def start(script: RawScript) -> str:
        async def on_connection(stream: trio.SocketStream) -> None:
            async with stream:
                await script(RawPeer(stream))

        listeners: list[trio.SocketListener] = await nursery.start(
            partial(trio.serve_tcp, on_connection, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/raw"

    return start
