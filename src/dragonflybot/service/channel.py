"""Client side: a purerpc channel with a small HTTP/2 flow-control window.

purerpc's own ``insecure_channel`` advertises a 64 MiB window per stream and
reads everything the server sends into an unbounded queue, acknowledging only
what the application consumes. For a book stream that means a slow reader can
sit on ~100 s of stale Summaries inside its own transport while the server
believes it is keeping up. A small window makes the server's writes wait for
this client instead, which lets the server's conflation skip stale states.

purerpc sizes the stream window as twice the largest accepted message; so the
window is set through ``max_message_length`` (64 KiB -> a 128 KiB window),
which also keeps a whole message inside the window, as purerpc needs (it
acknowledges data per complete message).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import trio
from purerpc.grpc_proto import GRPCProtoSocket
from purerpc.grpclib.config import GRPCConfiguration

from dragonflybot.errors import TransportError

MAX_MESSAGE = 64 * 1024
"""Largest Summary accepted; a depth-500 book of 8-letter venues is about 30 KiB."""


class Channel:
    """What purerpc's generated stubs need from a channel: host, port, a gRPC socket."""

    def __init__(self, host: str, port: int, grpc_socket: Any) -> None:
        self._host = host
        self._port = port
        self._grpc_socket = grpc_socket


@contextlib.asynccontextmanager
async def open_channel(
    host: str,
    port: int,
    *,
    connect_timeout: float = 5.0,
    max_message: int = MAX_MESSAGE,
) -> AsyncIterator[Channel]:
    """Connect to ``host:port``; ``TransportError`` if that fails within ``connect_timeout``."""
    try:
        with trio.fail_after(connect_timeout):
            socket = await anyio.connect_tcp(host, port)
    except trio.TooSlowError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: timed out") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TransportError(f"cannot connect to {host}:{port}: {reason}") from exc
    async with socket:
        config = GRPCConfiguration(client_side=True, max_message_length=max_message)
        async with GRPCProtoSocket(config, socket) as grpc_socket:
            yield Channel(host, port, grpc_socket)
