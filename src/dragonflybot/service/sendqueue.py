"""Bytes bound for one socket: written at once when nothing is ahead of them, else queued.

Why: before, every framed Summary went into the connection's outbox and woke its
writer task, which then wrote it (one more scheduler round per client per
Summary, and anyio's ``send`` around trio's around the socket's). Most of the
time nothing is queued and the kernel has room, so the stream's own task can
write with one non-blocking ``send``.

Why it cannot reorder or interleave bytes (the hang of the purerpc era was a
stream writing around a write in progress): ``write`` is the only way in, and it
writes directly only while the queue is empty *and* no write by the writer task
is in flight (``take`` to ``done``); otherwise the bytes join the queue behind
the others. What a direct ``send`` did not take (the kernel's buffer is full, see
``pacing``) is queued too, in order, and the writer task sends it once the socket
is writable. Trio runs one task at a time and nothing here awaits, so the
decision and the write are one step. Sans-I/O apart from the ``direct`` callable
(a socket's non-blocking ``send``), so the ordering is tested with hypothesis
without sockets (tests/service/test_sendqueue.py), and the connection's race with
sockets (tests/service/test_writer_race.py).
"""

from __future__ import annotations

from collections.abc import Callable


class SendQueue:
    """One connection's outgoing bytes; ``direct`` is the socket's non-blocking send, or None.

    ``direct`` returns the number of bytes the kernel took and may raise
    ``BlockingIOError`` (nothing taken) or another ``OSError`` (the peer is gone: it
    propagates, and nothing is queued). Without ``direct`` (TLS: the bytes must pass
    through the TLS object, whose writes are async) every write is queued.
    """

    __slots__ = ("_buffer", "_direct", "direct_bytes", "in_flight")

    def __init__(self, direct: Callable[[bytes], int] | None) -> None:
        self._direct = direct
        self._buffer = bytearray()
        self.in_flight = 0
        """Bytes the writer task took (``take``) and has not finished writing (``done``)."""
        self.direct_bytes = 0
        """Bytes written directly, over the connection's life (for tests and metrics)."""

    @property
    def queued(self) -> int:
        """Bytes waiting for the writer task."""
        return len(self._buffer)

    @property
    def pending(self) -> int:
        """Bytes not yet handed to the kernel: queued or in the writer's hands."""
        return len(self._buffer) + self.in_flight

    def write(self, data: bytes) -> bool:
        """Write ``data`` now if nothing is ahead of it, queue the rest; True if queued.

        When it returns True the writer task must be woken to send the queue.
        """
        if not data:
            return False
        direct = self._direct
        if direct is not None and not self._buffer and not self.in_flight:
            try:
                sent = direct(data)
            except BlockingIOError:
                sent = 0
            self.direct_bytes += sent
            if sent >= len(data):
                return False
            self._buffer += memoryview(data)[sent:]
            return True
        self._buffer += data
        return True

    def take(self) -> bytes:
        """Everything queued, for the writer task to send; in flight until ``done``."""
        data = bytes(self._buffer)
        self._buffer.clear()
        self.in_flight = len(data)
        return data

    def done(self) -> None:
        """The writer task's write ended (sent, or failed: the connection is then broken)."""
        self.in_flight = 0
