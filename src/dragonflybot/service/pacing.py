"""Knowing when a client has drained what we wrote, so its stream can stay current.

A conflating stream must hand the client the newest state, not queue old ones.
The fan-out slot holds only the newest state, but the connection could queue
states below it: h2 frames whatever it is given into its outbound buffer, and a
client advertising a 64 MiB stream window would let megabytes pile up there. So
a stream takes its next state only once the previous one has left the process
(``Connection.wait_drained``: the outbound buffer is empty and no socket write
is in progress). A slow client then gets one state per write it completes, each
the newest at that moment. A fast client costs no wait at all: its Summary is
written by the stream's own task straight into the kernel (``sendqueue``), so the
connection is drained the moment the send returns.

Below the process, the kernel's send buffer would hide another few megabytes of
stale states; ``TCP_NOTSENT_LOWAT`` keeps the unsent part small (the socket
reports "writable" only while less than that is waiting), so a blocked write
really means a slow reader.
"""

from __future__ import annotations

import contextlib
import socket

import anyio.abc

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
