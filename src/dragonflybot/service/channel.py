"""Client side: a purerpc channel with a small HTTP/2 flow-control window.

purerpc's own ``insecure_channel`` advertises a 64 MiB window per stream and
reads everything the server sends into an unbounded queue, acknowledging only
what the application consumes. For a book stream that means a slow reader can
sit on ~100 s of stale Summaries inside its own transport while the server
believes it is keeping up. A small window makes the server's writes wait for
this client instead, which lets the server's conflation skip stale states.
(``follow_book`` goes further and drains the stream as fast as it arrives,
keeping only the newest Summary for a slow display.)

purerpc sizes the stream window as twice the largest accepted message; so the
window is set through ``max_message_length`` (32 KiB -> a 64 KiB window, the
size grpcio starts with, instead of 64 MiB),
which also keeps a whole message inside the window, as purerpc needs (it
acknowledges data per complete message).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import trio
from purerpc.grpc_proto import GRPCProtoSocket
from purerpc.grpclib.config import GRPCConfiguration

from dragonflybot.config import format_listen
from dragonflybot.errors import TransportError

MAX_MESSAGE = 32 * 1024
"""Largest Summary accepted: a book at the maximum depth (250 a side) is about 15 KiB."""


class _ClientSocket(GRPCProtoSocket):  # type: ignore[misc]  # purerpc is untyped
    """purerpc's client socket, except that losing the connection ends the streams.

    purerpc's reader task simply returns on EOF, leaving every open stream
    waiting forever for a message; a book client would hang on a server that
    died. Closing each stream's event queue makes its next read raise
    ``anyio.EndOfStream`` instead.
    """

    async def _reader_thread(self) -> None:
        try:
            await super()._reader_thread()
        finally:
            for stream in list(self._streams.values()):
                stream._incoming_events[0].close()


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
        raise TransportError(f"cannot connect to {format_listen(host, port)}: timed out") from exc
    except OSError as exc:
        # anyio reports "All connection attempts failed" and chains the real reason.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        raise TransportError(f"cannot connect to {format_listen(host, port)}: {reason}") from exc
    async with socket:
        config = GRPCConfiguration(client_side=True, max_message_length=max_message)
        async with _ClientSocket(config, socket) as grpc_socket:
            yield Channel(host, port, grpc_socket)
