"""The many-connection benchmark client: one epoll loop, h2 off the per-message path.

Why it exists: ``benchmarks.h2client`` (trio, one task and one ``h2`` connection per
stream) costs about 100 µs of client CPU per message at 500 connections per process;
the fan-out target (1,000 clients capped at 20 Summaries/s: 20,000 messages/s) then
needs cores of its own and, on the project's two cores, could not be read at all (each
client got 1-2/s: docs/performance.md). This client is benchmark code, not the service:
it reads the same streams for a fraction of that cost by doing less per message.

* One process, one loop: every socket non-blocking in one ``select.epoll``; no tasks,
  no cancel scopes, no trio checkpoint per read.
* ``h2`` does the handshake and every rare frame: the preface, SETTINGS, HEADERS and
  the request (``h2client.GrpcStream.start``), the response headers, trailers,
  RST_STREAM, GOAWAY, SETTINGS and WINDOW_UPDATE from the server (each such frame is
  fed to it whole, so its HPACK and stream state stay right).
* The two frames that come per message or per keepalive are read by hand
  (``LeanStream``): DATA (padding stripped, split into gRPC messages) and PING
  (answered with an ACK carrying the same 8 bytes). The DATA bytes are acknowledged in
  batches, a WINDOW_UPDATE for the stream and one for the connection once half the
  1 MiB window is used: as ``h2``'s own policy, and far inside the service's flood guard
  (it refunds two control tokens per DATA frame sent).

Results, entry point and pipe protocol are ``h2client.client_child``'s (per stream:
messages counted after the first, first and last read times, how the stream ended), so
``benchmarks.fanout`` and ``benchmarks.roles`` can use either. It also prints its own
CPU per message read between "connected" and "stop" to stderr (the figure this client
exists to keep small).
"""

from __future__ import annotations

import errno
import heapq
import select
import socket
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any, Final

import h2.exceptions

from benchmarks.h2client import (
    BOOK_SUMMARY,
    CONNECT_TIMEOUT,
    FIRST_MESSAGE_WAIT,
    IDLE_TIMEOUT,
    MAX_MESSAGE,
    READ_SIZE,
    WINDOW,
    GrpcStream,
    H2ClientError,
    Outcome,
)

DATA: Final = 0x0
PING: Final = 0x6
END_STREAM: Final = 0x1
ACK: Final = 0x1
PADDED: Final = 0x8
MAX_FRAME: Final = 16_384
"""The SETTINGS_MAX_FRAME_SIZE this client advertises (h2's default): a longer frame is
a broken connection, not one to buffer."""
ACK_AT: Final = WINDOW // 2
"""Unacknowledged DATA bytes after which the stream and the connection get their
WINDOW_UPDATEs."""


def window_update(stream_id: int, increment: int) -> bytes:
    return (
        b"\x00\x00\x04\x08\x00"
        + stream_id.to_bytes(4, "big")
        + (increment & 0x7FFFFFFF).to_bytes(4, "big")
    )


class LeanStream:
    """One connection carrying one server-streaming call (sans-I/O): bytes in, gRPC
    messages and bytes to send out; ``outcome`` records how the call ended."""

    __slots__ = ("_call", "_frames", "_message", "_out", "_unacked", "outcome", "stream_id")

    def __init__(self, authority: str, path: str, request: bytes = b"") -> None:
        self._call = GrpcStream(authority, path, request)
        self.outcome: Outcome = self._call.outcome
        self.stream_id = 1
        self._frames = b""
        """Bytes of an incomplete HTTP/2 frame."""
        self._message = b""
        """Bytes of an incomplete gRPC message (on this call's stream)."""
        self._out: list[bytes] = []
        self._unacked = 0

    def start(self) -> bytes:
        data = self._call.start()
        self.stream_id = self._call.stream_id
        return data

    def receive(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completed. Raises ``H2Error`` (h2's verdict on a rare
        frame) and ``H2ClientError`` (a broken frame or broken gRPC framing)."""
        if self._frames:
            data = self._frames + data
        messages: list[bytes] = []
        pos = 0
        end = len(data)
        while end - pos >= 9:
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length > MAX_FRAME:
                raise H2ClientError(f"a frame of {length} bytes (limit {MAX_FRAME})")
            stop = pos + 9 + length
            if stop > end:
                break
            kind = data[pos + 3]
            if kind == DATA:
                self._data(data, pos, stop, messages)
            elif kind == PING:
                self._ping(data, pos, stop)
            else:  # a rare frame: h2 keeps the HPACK and stream state
                messages += self._call.receive(data[pos:stop])
                out = self._call.data_to_send()
                if out:
                    self._out.append(out)
            pos = stop
        self._frames = data[pos:] if pos < end else b""
        return messages

    def _data(self, data: bytes, pos: int, stop: int, messages: list[bytes]) -> None:
        flags = data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        start = pos + 9
        self._unacked += stop - start
        if flags & PADDED:
            if stop == start:
                raise H2ClientError("a padded DATA frame without its pad length")
            pad = data[start]
            start += 1
            if pad > stop - start:
                raise H2ClientError(f"{pad} bytes of padding in a shorter DATA frame")
            stop -= pad
        if self._unacked >= ACK_AT and not self.outcome.ended:
            self._out.append(
                window_update(0, self._unacked) + window_update(self.stream_id, self._unacked)
            )
            self._unacked = 0
        if stream_id != self.stream_id:
            return  # counted against the connection window, not a message of this call
        payload = data[start:stop]
        messages += self._split(self._message + payload if self._message else payload)
        if flags & END_STREAM and not self.outcome.ended:
            self.outcome.closed = True
            self.outcome.error = "stream ended without trailers"

    def _split(self, payload: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        end = len(payload)
        while end - pos >= 5:
            if payload[pos] != 0:
                raise H2ClientError(f"compressed flag {payload[pos]} (nothing was negotiated)")
            length = int.from_bytes(payload[pos + 1 : pos + 5], "big")
            if length > MAX_MESSAGE:
                raise H2ClientError(f"a message of {length} bytes (limit {MAX_MESSAGE})")
            if end - pos - 5 < length:
                break
            out.append(payload[pos + 5 : pos + 5 + length])
            pos += 5 + length
        self._message = payload[pos:] if pos < end else b""
        return out

    def _ping(self, data: bytes, pos: int, stop: int) -> None:
        if stop - pos != 17:
            raise H2ClientError(f"a PING of {stop - pos - 9} bytes")
        if not data[pos + 4] & ACK:
            self._out.append(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + data[pos + 9 : stop])

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame and message (non-zero when a read ended mid-way)."""
        return len(self._frames) + len(self._message)


# --- the client process ---------------------------------------------------------------------


class _Connection:
    """One socket, its call and its tally (the loop's per-connection state)."""

    __slots__ = (
        "connect_by",
        "connecting",
        "count",
        "first_ns",
        "last_ns",
        "last_read",
        "out",
        "received",
        "settled",
        "sock",
        "stream",
    )

    def __init__(self, sock: socket.socket, stream: LeanStream, now: float) -> None:
        self.sock = sock
        self.stream = stream
        self.connecting = True
        self.connect_by = now + CONNECT_TIMEOUT
        self.last_read = now
        self.out = b""
        """Bytes the socket did not take yet (sent when it is writable)."""
        self.settled = False
        """Its first message came (the state at subscription: not counted) or it ended."""
        self.count = 0
        self.first_ns = 0
        self.last_ns = 0
        self.received: list[tuple[int, bytes]] = []


class _Loop:
    """Every connection of the process in one ``select.epoll`` (level-triggered: one read
    per readable socket per turn, so a busy stream cannot starve the others)."""

    def __init__(self, record: bool, delay: float) -> None:
        self.epoll = select.epoll()
        self.connections: dict[int, _Connection] = {}
        self.ordered: list[_Connection] = []
        self.record = record
        self.delay = delay
        self.unsettled = 0
        self.messages = 0
        self.paused: list[tuple[float, int]] = []
        """(resume time, fd): slow connections not read until then (``delay``)."""

    def open(self, target: str, path: str, request: bytes) -> None:
        host, _, port = target.rpartition(":")
        stream = LeanStream(target, path, request)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Connection(sock, stream, time.monotonic())
        self.ordered.append(c)
        self.unsettled += 1
        err = sock.connect_ex((host, int(port)))
        if err not in (0, errno.EINPROGRESS):
            self._end(c, f"connect: {errno.errorcode.get(err, err)}", register=False)
            return
        self.connections[sock.fileno()] = c
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def _end(self, c: _Connection, error: str, *, register: bool = True) -> None:
        """The connection is done: ``error`` is its outcome unless h2 already recorded one."""
        if not c.stream.outcome.ended:
            c.stream.outcome.closed = True
            c.stream.outcome.error = error
        if not c.settled:
            c.settled = True
            self.unsettled -= 1
        fd = c.sock.fileno()
        if register and fd in self.connections:
            del self.connections[fd]
            self.epoll.unregister(fd)
        c.sock.close()

    def _send(self, fd: int, c: _Connection, data: bytes) -> None:
        if c.out:
            c.out += data
            return
        try:
            sent = c.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._end(c, f"socket: {exc.__class__.__name__}")
            return
        if sent < len(data):
            c.out = data[sent:]
            self.epoll.modify(fd, select.EPOLLIN | select.EPOLLOUT)

    def _writable(self, fd: int, c: _Connection) -> None:
        if c.connecting:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._end(c, f"connect: {errno.errorcode.get(err, err)}")
                return
            c.connecting = False
            c.last_read = time.monotonic()
            self.epoll.modify(fd, select.EPOLLIN)
            self._send(fd, c, c.stream.start())
            return
        out, c.out = c.out, b""
        self.epoll.modify(fd, select.EPOLLIN)
        self._send(fd, c, out)

    def _readable(self, fd: int, c: _Connection) -> None:
        try:
            data = c.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._end(c, f"socket: {exc.__class__.__name__}")
            return
        now = time.time_ns()
        if not data:
            self._end(c, "closed by the server")
            return
        stream = c.stream
        try:
            messages = stream.receive(data)
        except (h2.exceptions.H2Error, H2ClientError) as exc:
            self._end(c, f"broken by the server: {exc}")
            return
        c.last_read = time.monotonic()
        if messages:
            if not c.settled:
                c.settled = True  # the state at subscription: not a publication, not counted
                self.unsettled -= 1
                messages = messages[1:]
            if messages:
                if not c.count:
                    c.first_ns = now
                c.count += len(messages)
                c.last_ns = now
                self.messages += len(messages)
                if self.record:
                    c.received += [(now, m) for m in messages]
        out = stream.data_to_send()
        if out:
            self._send(fd, c, out)
        if stream.outcome.ended:
            self._end(c, "")
        elif self.delay and messages and fd in self.connections:
            self.epoll.modify(fd, 0)
            heapq.heappush(self.paused, (c.last_read + self.delay * len(messages), fd))

    def turn(self, timeout: float, stop_fd: int) -> bool:
        """One wait and the reads it allows; True once ``stop_fd`` is readable."""
        if self.paused:
            timeout = max(0.0, min(timeout, self.paused[0][0] - time.monotonic()))
        stop = False
        connections = self.connections
        for fd, events in self.epoll.poll(timeout):
            if fd == stop_fd:
                stop = True
                continue
            c = connections.get(fd)
            if c is None:
                continue
            if events & select.EPOLLOUT:
                self._writable(fd, c)
                if fd not in connections:
                    continue
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                self._readable(fd, c)
        now = time.monotonic()
        while self.paused and self.paused[0][0] <= now:
            _, fd = heapq.heappop(self.paused)
            if fd in connections:
                c = connections[fd]
                self.epoll.modify(fd, select.EPOLLIN | (select.EPOLLOUT if c.out else 0))
        return stop

    def expire(self) -> None:
        """End connections that never connected or fell silent (``IDLE_TIMEOUT``)."""
        now = time.monotonic()
        paused = {fd for _, fd in self.paused}
        for fd, c in list(self.connections.items()):
            if c.connecting and now > c.connect_by:
                self._end(c, "connect: TooSlowError")
            elif not c.connecting and fd not in paused and now - c.last_read > IDLE_TIMEOUT:
                self._end(c, f"silent for {IDLE_TIMEOUT:g} s")

    def close(self) -> None:
        for c in list(self.connections.values()):
            c.sock.close()
        self.connections.clear()
        self.epoll.close()


def client_child(
    conn: Connection,
    targets: list[str],
    record: bool,
    delay: float,
    path: str = BOOK_SUMMARY,
    request: bytes = b"",
) -> None:
    """Many streams in one process, with ``h2client.client_child``'s pipe protocol.

    Sends "connected" once every stream has had its first message (or ended), then
    streams until the parent sends anything ("stop"), then sends one result per target:
    ``[(time_ns, message), ...]`` with ``record``, else ``(count, first_ns, last_ns,
    end)``, ``end`` saying how the stream ended ("open" while it ran to the stop).
    """
    from benchmarks.rig import other_cpus, pin

    pin(other_cpus())
    conn.send(run_client(conn, targets, record, delay, path, request))


def run_client(
    conn: Connection,
    targets: list[str],
    record: bool,
    delay: float,
    path: str = BOOK_SUMMARY,
    request: bytes = b"",
) -> list[Any]:
    """``client_child``'s work, up to the results it sends (tests run it in a thread)."""
    loop = _Loop(record, delay)
    stop_fd = conn.fileno()
    loop.epoll.register(stop_fd, select.EPOLLIN)
    try:
        for target in targets:
            loop.open(target, path, request)
        give_up = time.monotonic() + FIRST_MESSAGE_WAIT
        next_check = time.monotonic() + 1.0
        connected = False
        cpu0 = messages0 = 0.0
        while True:
            if not connected and (loop.unsettled == 0 or time.monotonic() > give_up):
                conn.send("connected")
                connected = True
                cpu0, messages0 = time.process_time(), loop.messages
            if loop.turn(0.2 if connected else 0.05, stop_fd):
                if not connected:  # a "stop" before "connected": the parent gave up
                    cpu0, messages0 = time.process_time(), loop.messages
                break
            if time.monotonic() > next_check:
                loop.expire()
                next_check = time.monotonic() + 1.0
        cpu = time.process_time() - cpu0
        read = loop.messages - messages0
        conn.recv()  # "stop"
    finally:
        loop.close()
    per = f"{cpu / read * 1e6:.1f} µs per message" if read else "no messages"
    print(
        f"leanclient: {len(targets)} streams, {read:.0f} messages between connected and "
        f"stop, CPU {cpu:.2f} s: {per}; {loop.messages + len(loop.ordered)} messages, "
        f"process CPU {time.process_time():.2f} s in all",
        file=sys.stderr,
        flush=True,
    )
    ends = [c.stream.outcome.describe() for c in loop.ordered]
    counts = Counter(e for e in ends if e != "open")
    if counts:
        print(
            f"leanclient: {sum(counts.values())} of {len(ends)} streams ended early: "
            + "; ".join(f"{n} x {e}" for e, n in counts.most_common()),
            file=sys.stderr,
            flush=True,
        )
    return [
        c.received if record else (c.count, c.first_ns, c.last_ns, end)
        for c, end in zip(loop.ordered, ends, strict=True)
    ]
