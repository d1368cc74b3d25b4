"""A lean gRPC streaming client for the benchmarks: HTTP/2 read by ``h2`` on a raw socket.

Why not grpcio: a grpcio client is a C core plus one Python thread per call; on the
project's two cores 1,000 of them starve the machine (each got ~1-2 Summaries/s in the
first fan-out runs) and its thread hop (~150 µs) hides the service's own latency. Here
one trio process holds many connections, each carrying one server-streaming call, and
does only what a client must:

* the connection preface, SETTINGS (a large initial window, no push), one HEADERS and
  one request message (``GrpcStream.start``);
* acknowledging received DATA (``acknowledge_received_data``: h2 sends WINDOW_UPDATE for
  the stream and the connection once half a window is consumed), so the server never
  waits on this client's window; PING and SETTINGS are acknowledged by h2 itself. Not
  one WINDOW_UPDATE per read: two control frames per Summary is more than the service's
  flood guard refunds (one per DATA frame sent; ``service/guard.py``), and it cuts such
  a client with GOAWAY(ENHANCE_YOUR_CALM) after the burst;
* splitting the DATA bytes into gRPC messages (1-byte compressed flag, 4-byte big-endian
  length, the message) and handing each one on with the wall-clock time
  (``time.time_ns``) of the socket read that completed it;
* noting how the call ended: trailers (``grpc-status``), RST_STREAM, GOAWAY (code and
  debug data), or the socket closing.

``GrpcStream`` is the sans-I/O part (bytes in, messages and bytes to send out);
``run_stream`` owns one socket; ``client_child`` is a process of many streams, started
like ``benchmarks.rig.client_child`` (same arguments, same pipe protocol, same results,
plus how each stream ended) so a benchmark can use either.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import trio

BOOK_SUMMARY: Final = "/orderbook.OrderbookAggregator/BookSummary"
STREAM_BOOK: Final = "/dragonflybot.v1.BookService/StreamBook"
WINDOW: Final = 1 << 20
"""Initial stream window and connection window this client grants (grpcio's BDP probing
grows to the same order): the server never waits on a window while this client reads."""
READ_SIZE: Final = 1 << 16
MAX_MESSAGE: Final = 4 << 20
"""A longer length prefix is a broken stream, not a message to wait for."""
IDLE_TIMEOUT: Final = 60.0
"""Seconds a stream may stay silent (the benchmark's services publish several times a
second; a capped one at least once a second) before the client gives up on it."""
ACK_EVERY: Final = int(os.environ.get("H2CLIENT_ACK_EVERY", "0"))
"""Bytes after which ``run_stream``'s calls acknowledge (0: h2's half-window policy)."""
CONNECT_TIMEOUT: Final = 30.0
FIRST_MESSAGE_WAIT: Final = 120.0
"""How long a client process waits for every stream's first message before reporting."""


class H2ClientError(Exception):
    """The server broke the gRPC framing (a compressed message, an oversized length)."""


@dataclass
class Outcome:
    """How a call ended (all unset while it runs)."""

    grpc_status: int | None = None
    grpc_message: str = ""
    http_status: int | None = None
    reset_code: int | None = None
    goaway_code: int | None = None
    goaway_debug: bytes = b""
    closed: bool = False
    """The socket closed (or timed out, or the framing broke) without any of the above."""
    error: str = ""

    @property
    def ended(self) -> bool:
        return (
            self.grpc_status is not None
            or self.reset_code is not None
            or self.goaway_code is not None
            or self.closed
        )

    def describe(self) -> str:
        """One line, the same for the same cause (the client processes count them)."""
        if self.goaway_code is not None:
            name = _code_name(self.goaway_code)
            return f"GOAWAY {name} {self.goaway_debug.decode(errors='replace')!r}"
        if self.reset_code is not None:
            return f"RST_STREAM {_code_name(self.reset_code)}"
        if self.grpc_status is not None:
            return f"grpc-status {self.grpc_status} {self.grpc_message!r}"
        if self.error:
            return self.error
        return "closed" if self.closed else "open"


def _code_name(code: int) -> str:
    try:
        return str(h2.errors.ErrorCodes(code).name)
    except ValueError:
        return str(code)


def book_request(instrument: str, depth: int = 0, max_rate: float = 0.0) -> bytes:
    """A ``dragonflybot.v1.BookRequest`` (the StreamBook call's request message)."""
    from dragonflybot.service.book_v1_encoding import BookRequest

    encoded: bytes = BookRequest(
        instrument=instrument, depth=depth, max_rate=max_rate
    ).SerializeToString()
    return encoded


def frame_message(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class MessageSplitter:
    """gRPC messages out of a stream's DATA bytes, split anywhere."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        pos = 0
        end = len(buffer)
        while end - pos >= 5:
            if buffer[pos] != 0:
                raise H2ClientError(f"compressed flag {buffer[pos]} (nothing was negotiated)")
            length = int.from_bytes(buffer[pos + 1 : pos + 5], "big")
            if length > MAX_MESSAGE:
                raise H2ClientError(f"a message of {length} bytes (limit {MAX_MESSAGE})")
            if end - pos - 5 < length:
                break
            out.append(bytes(buffer[pos + 5 : pos + 5 + length]))
            pos += 5 + length
        if pos:
            del buffer[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message (non-zero when a stream ends mid-message)."""
        return len(self._buffer)


class GrpcStream:
    """One client HTTP/2 connection carrying one server-streaming gRPC call (sans-I/O)."""

    def __init__(
        self, authority: str, path: str, request: bytes = b"", *, ack_every: int = 0
    ) -> None:
        """``ack_every``: give received bytes back once that many are unacknowledged
        (WINDOW_UPDATE for the stream and the connection); 0: h2's policy, half the
        window."""
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self._authority = authority.encode()
        self._path = path.encode()
        self._request = request
        self._splitter = MessageSplitter()
        self.stream_id = 1
        self.outcome = Outcome()
        self._ack_every = ack_every
        self._unacked = 0

    def start(self) -> bytes:
        """Preface, SETTINGS, the connection window, the call's HEADERS and request."""
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(WINDOW - 65535)
        self.stream_id = self._h2.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", self._path),
            (b":authority", self._authority),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
        self._h2.send_headers(self.stream_id, headers)
        self._h2.send_data(self.stream_id, frame_message(self._request), end_stream=True)
        return self.data_to_send()

    def receive(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completed; ``outcome`` records an end. Raises ``H2Error``
        (h2's verdict on broken HTTP/2) and ``H2ClientError`` (broken gRPC framing)."""
        messages: list[bytes] = []
        for event in self._h2.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                if self._ack_every and event.stream_id == self.stream_id:
                    self._unacked += event.flow_controlled_length
                else:
                    self._h2.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                if event.stream_id == self.stream_id:
                    messages += self._splitter.feed(event.data)
            elif isinstance(event, h2.events.ResponseReceived):
                self._response_headers(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                self._trailers(event.headers)
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id == self.stream_id and not self.outcome.ended:
                    self.outcome.reset_code = int(event.error_code)
            elif isinstance(event, h2.events.ConnectionTerminated):
                if not self.outcome.ended:
                    self.outcome.goaway_code = int(event.error_code)
                    self.outcome.goaway_debug = event.additional_data or b""
            elif isinstance(event, h2.events.StreamEnded) and not self.outcome.ended:
                self.outcome.closed = True
                self.outcome.error = "stream ended without trailers"
        if self._ack_every and self._unacked >= self._ack_every and not self.outcome.ended:
            self._h2.increment_flow_control_window(self._unacked)
            self._h2.increment_flow_control_window(self._unacked, self.stream_id)
            self._unacked = 0
        return messages

    def data_to_send(self) -> bytes:
        data: bytes = self._h2.data_to_send()
        return data

    def _response_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        values = dict(headers)
        status = values.get(b":status", b"")
        self.outcome.http_status = int(status) if status.isdigit() else None
        if b"grpc-status" in values:  # trailers-only: the call ends here
            self._trailers(headers)

    def _trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        values = dict(headers)
        status = values.get(b"grpc-status", b"")
        self.outcome.grpc_status = int(status) if status.isdigit() else -1
        self.outcome.grpc_message = values.get(b"grpc-message", b"").decode(errors="replace")


async def run_stream(
    target: str,
    path: str,
    request: bytes,
    on_message: Callable[[int, bytes], None],
    *,
    delay: float = 0.0,
    idle_timeout: float = IDLE_TIMEOUT,
    ack_every: int = ACK_EVERY,
) -> Outcome:
    """One connection, one call, read until it ends; ``on_message(time_ns, message)`` for
    every message, ``time_ns`` taken as the socket read that completed it returned.
    ``delay``: seconds slept per message read (a slow client; the window then closes).
    ``ack_every``: see ``GrpcStream`` (0: h2's half-window policy)."""
    host, _, port = target.rpartition(":")
    call = GrpcStream(target, path, request, ack_every=ack_every)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            sock = await trio.open_tcp_stream(host, int(port))
    except (OSError, trio.TooSlowError) as exc:
        call.outcome.closed = True
        call.outcome.error = f"connect: {exc.__class__.__name__}"
        return call.outcome
    async with sock:
        scope = trio.CancelScope()
        try:
            with scope:
                scope.deadline = trio.current_time() + idle_timeout
                await sock.send_all(call.start())
                while not call.outcome.ended:
                    data = await sock.receive_some(READ_SIZE)
                    now = time.time_ns()
                    if not data:
                        call.outcome.closed = True
                        call.outcome.error = "closed by the server"
                        break
                    messages = call.receive(data)
                    for message in messages:
                        on_message(now, message)
                    out = call.data_to_send()
                    if out:
                        await sock.send_all(out)
                    if delay and messages:
                        await trio.sleep(delay * len(messages))
                    scope.deadline = trio.current_time() + idle_timeout
            if scope.cancelled_caught:
                call.outcome.closed = True
                call.outcome.error = f"silent for {idle_timeout:g} s"
        except (trio.BrokenResourceError, OSError) as exc:
            call.outcome.closed = True
            call.outcome.error = f"socket: {exc.__class__.__name__}"
        except (h2.exceptions.H2Error, H2ClientError) as exc:
            call.outcome.closed = True
            call.outcome.error = f"broken by the server: {exc}"
    return call.outcome


# --- client processes -----------------------------------------------------------------------


@dataclass
class _Tally:
    record: bool
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    received: list[tuple[int, bytes]] = field(default_factory=list)
    first: trio.Event = field(default_factory=trio.Event)
    outcome: Outcome | None = None

    def message(self, now: int, message: bytes) -> None:
        if not self.first.is_set():
            self.first.set()  # the state at subscription: not a publication, not counted
            return
        self.count += 1
        self.last_ns = now
        if self.count == 1:
            self.first_ns = now
        if self.record:
            self.received.append((now, message))


def client_child(
    conn: Connection,
    targets: list[str],
    record: bool,
    delay: float,
    path: str = BOOK_SUMMARY,
    request: bytes = b"",
) -> None:
    """Many h2 streams in one process, with ``rig.client_child``'s pipe protocol.

    Sends "connected" once every stream has had its first message (or ended), then
    streams until the parent sends anything ("stop"), then sends one result per target:
    ``[(time_ns, message), ...]`` with ``record``, else ``(count, first_ns, last_ns,
    end)``, ``end`` saying how the stream ended ("open" while it ran to the stop).
    """
    from benchmarks.rig import other_cpus, pin

    pin(other_cpus())
    trio.run(_child_main, conn, targets, record, delay, path, request)


async def _child_main(
    conn: Connection, targets: list[str], record: bool, delay: float, path: str, request: bytes
) -> None:
    tallies = [_Tally(record) for _ in targets]

    async def one(tally: _Tally, target: str) -> None:
        tally.outcome = Outcome()
        outcome = await run_stream(target, path, request, tally.message, delay=delay)
        tally.outcome = outcome
        tally.first.set()

    async with trio.open_nursery() as nursery:
        for tally, target in zip(tallies, targets, strict=True):
            nursery.start_soon(one, tally, target)
        with trio.move_on_after(FIRST_MESSAGE_WAIT):
            for tally in tallies:
                await tally.first.wait()
        conn.send("connected")
        await trio.to_thread.run_sync(conn.recv)
        nursery.cancel_scope.cancel()
    if os.environ.get("H2CLIENT_VERBOSE"):
        print(
            f"h2client: {len(tallies)} streams, {sum(t.count for t in tallies)} messages, "
            f"process CPU {time.process_time():.2f} s",
            file=sys.stderr,
            flush=True,
        )
    ends = [t.outcome.describe() if t.outcome is not None else "never started" for t in tallies]
    counts = Counter(e for e in ends if e != "open")
    if counts:
        print(
            f"h2client: {sum(counts.values())} of {len(tallies)} streams ended early: "
            + "; ".join(f"{n} x {e}" for e, n in counts.most_common()),
            file=sys.stderr,
            flush=True,
        )
    results: list[Any] = [
        t.received if record else (t.count, t.first_ns, t.last_ns, end)
        for t, end in zip(tallies, ends, strict=True)
    ]
    conn.send(results)
