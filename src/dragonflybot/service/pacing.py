"""Knowing when a client has drained what we wrote, so its stream can stay current.

A conflating stream must hand the client the newest state, not queue old ones.
The fan-out slot holds only the newest state, but purerpc would happily queue
states below it: it buffers everything written in the h2 connection and writes
it to the socket from a background task, and a client advertising purerpc's
64 MiB stream window lets megabytes pile up there. So a stream takes its next
state only once the previous one has left the process: the h2 outbound buffer is
empty and no socket write is in progress. A slow client then gets one state per
write it completes, each the newest at that moment.

Below the process, the kernel's send buffer would hide another few megabytes of
stale states; ``TCP_NOTSENT_LOWAT`` keeps the unsent part small (the socket
reports "writable" only while less than that is waiting), so a blocked write
really means a slow reader.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import anyio
import anyio.abc
import trio

NOTSENT_LOWAT = 16 * 1024
"""Unsent bytes the kernel may hold per connection before a write blocks."""


def tune_socket(stream: anyio.abc.SocketStream) -> None:
    """Limit the kernel's unsent backlog where the platform allows it."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is None:
        return
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, NOTSENT_LOWAT)


class PacedStream(anyio.abc.SocketStream):
    """The accepted socket, as purerpc's writer sees it, plus "is it drained?".

    A failed write marks the connection broken and is swallowed: purerpc's
    writer task would otherwise crash its task group from under the streams. The
    reading side sees the same dead socket and ends the connection in order.
    """

    def __init__(self, inner: anyio.abc.SocketStream, pending: Callable[[], int]) -> None:
        """``pending()`` is the number of bytes written but still above the socket."""
        self._inner = inner
        self._pending = pending
        self._sending = False
        self._lot = trio.lowlevel.ParkingLot()
        self.broken = False
        self.bytes_sent = 0

    @property
    def drained(self) -> bool:
        """Everything written so far has reached the kernel (or the peer is gone)."""
        return self.broken or (not self._sending and not self._pending())

    async def wait_drained(self) -> None:
        """Wait until ``drained``; always a checkpoint."""
        await trio.lowlevel.checkpoint()
        while not self.drained:
            await self._lot.park()

    async def send(self, item: bytes) -> None:
        if self.broken:
            return
        self._sending = True
        try:
            await self._inner.send(item)
            self.bytes_sent += len(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.broken = True
        finally:
            self._sending = False
            self._lot.unpark_all()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        self.broken = True
        self._lot.unpark_all()
        await self._inner.aclose()

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self._inner.extra(anyio.abc.SocketAttribute.raw_socket)
        return sock
