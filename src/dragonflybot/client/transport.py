"""The seam between the feeds and the WebSocket implementation.

Feeds only see ``MessageStream``; which library moves the bytes is a keyword argument, so the hot
path can use the lean wsproto loop while trio-websocket stays available as the reference.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, Protocol

from dragonflybot.client.trio_websocket_backend import open_trio_websocket_stream
from dragonflybot.client.wsproto_backend import open_wsproto_stream
from dragonflybot.errors import ConfigError

Backend = Literal["wsproto", "trio-websocket"]
BACKENDS: tuple[Backend, ...] = ("wsproto", "trio-websocket")


class MessageStream(Protocol):
    """An open WebSocket connection as the feeds use it.

    ``receive`` returns the next complete data message (text as ``str``, binary as ``bytes``) and
    raises ``TransportError`` once the connection is closed or broken; messages that arrived
    before the close are still delivered first. Pings from the peer are answered by the stream.
    """

    @property
    def url(self) -> str: ...

    @property
    def last_received(self) -> float:
        """``trio.current_time()`` when bytes last arrived from the peer: data, pings and
        pongs alike, so a quiet venue on a healthy connection is seen alive."""
        ...

    async def ping(self) -> None:
        """Send a WebSocket ping; its pong, when it comes, moves ``last_received``."""
        ...

    async def send(self, message: str) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def aclose(self) -> None: ...


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    connect_timeout: float = 10.0,
    max_message_size: int = 4 * 1024 * 1024,
    ssl_context: ssl.SSLContext | None = None,
    backend: Backend = "wsproto",
    disconnect_timeout: float = 2.0,
) -> AsyncIterator[MessageStream]:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) and close it when the block exits.

    ``wss://`` verifies the server certificate against the system store plus certifi unless
    ``ssl_context`` is given (it is ignored for ``ws://``). Failing to connect within
    ``connect_timeout`` (TCP, TLS and upgrade together), a refused or rejected connection, and a
    TLS failure raise ``TransportError`` naming the URL; a bad URL raises ``ConfigError``. A
    message longer than ``max_message_size`` (as measured by ``len()``) closes the connection
    with code 1009 and makes ``receive`` raise ``TransportError``. On exit the close handshake
    gets at most ``disconnect_timeout`` seconds, even when the block was cancelled.
    """
    if max_message_size <= 0:
        raise ConfigError(f"max_message_size must be positive, got {max_message_size}")
    if backend == "wsproto":
        async with open_wsproto_stream(
            url,
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            disconnect_timeout=disconnect_timeout,
        ) as stream:
            yield stream
    elif backend == "trio-websocket":
        async with open_trio_websocket_stream(
            url,
            connect_timeout=connect_timeout,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            disconnect_timeout=disconnect_timeout,
        ) as library_stream:
            yield library_stream
    else:
        raise ConfigError(f"unknown WebSocket backend {backend!r}; expected one of {BACKENDS}")
