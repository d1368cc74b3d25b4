"""One client connection: HTTP/2 (h2, sans-I/O) and gRPC spoken here, every limit enforced here.

Why not purerpc's server side any more: its ``GRPCProtoSocket`` let any one
client stop or freeze the whole process (issue 16). A request without
``content-type`` raised ``KeyError`` out of its request parsing; a non-POST, a bad
path, ``grpc-timeout`` or ``-bin`` header, or a body that is not protobuf raised
errors nothing caught; it advertised 64 MiB stream windows, a 1 GiB connection
window, 16 MiB frames and 32 MiB messages; it read 1 MiB at a time and handled
every frame in it before yielding (a PING flood starved every other task); it
ignored RST_STREAM (each reset stream stayed until the connection closed) and
put no bound on concurrent streams. Those are its design, not bugs one wrapper
could fix, so the server speaks HTTP/2 through the ``h2`` state machine directly
and does gRPC's small part (5-byte message prefix, status trailers) itself, in
``grpcwire``. purerpc keeps the generated servicer classes, its status types and
the client side (``purerpc_adapter``).

How one connection is kept cheap and isolated:

* small settings advertised: 64 KiB stream window, 16 KiB frames, a bounded
  number of concurrent streams and header-list size (``LimitsConfig``). The
  stream limit is enforced here, not by h2 (which would end the connection):
  a stream over it is refused with RST_STREAM(REFUSED_STREAM) before any task
  starts;
* the socket is read 4 KiB at a time, and each read is a trio checkpoint, so
  no connection holds the loop for more than the frames in 4 KiB;
* ``guard.FrameGuard`` counts frames before h2 parses them: control-frame and
  reset floods and oversized header blocks end the connection with GOAWAY
  ENHANCE_YOUR_CALM;
* a request message is capped at ``max_receive_message`` (RESOURCE_EXHAUSTED,
  decided on the declared length), and a stream's state is freed the moment it
  ends or the client resets it (its handler is cancelled);
* a unary request's data is acknowledged at once (what it buffers is bounded by
  the message cap). A client-streaming (bidirectional) stream's data is
  acknowledged only while its handler keeps up (``INBOUND_QUEUE`` messages
  waiting at most): past that the client's window closes, so a client flooding
  a bidirectional stream is throttled by HTTP/2 flow control, not buffered. Such
  a stream holds a slot of the stream limit; waiting longer than
  ``idle_timeout`` for its next request ends it (DEADLINE_EXCEEDED);
* a malformed request (method, content type, ``te``, path, ``grpc-timeout``,
  ``-bin`` header, encoding, a body that is not the request type) gets its status
  on its own stream; a broken HTTP/2 connection gets GOAWAY from h2 and ends
  alone; nothing here raises past ``serve`` but cancellation;
* a connection that does not complete the handshake (TLS if configured, then
  preface and SETTINGS) in ``handshake_timeout``, or has no open stream for
  ``idle_timeout``, gets GOAWAY and is closed;
* a client silent for ``keepalive_interval`` gets a PING; without its ACK within
  ``keepalive_timeout`` the connection is closed (a vanished or frozen client
  would otherwise hold its streams, and their slots, for ever);
* with a ``TokenCheck`` every call but the open services (health) needs the
  bearer token: UNAUTHENTICATED before any task starts, charged like a malformed
  request, so guessing tokens is cut as rapid reset.

Streams run in their own tasks. A server stream takes its next message only
when the previous one has left the process (``wait_drained``; see ``pacing``),
and it respects the client's flow-control window: a message larger than the
window is sent as far as it fits, and the rest waits for WINDOW_UPDATE.
Shutdown cancels every stream, which then ends with UNAVAILABLE (or a reset if a
message was cut in half), then GOAWAY, then the socket closes once the bytes left.

The send path (issue 14; figures in docs/performance.md, "The send path"). A
Summary is the same bytes for every client, framed once per state
(``summary.EncodedBook.framed``), so a send costs what is per client only:

* the DATA frame headers and the window arithmetic, done by ``h2send.frame_data``
  (9 bytes per frame plus slices of the shared message; h2's windows charged as
  its ``send_data`` charges them, byte-for-byte with h2 in the tests) instead of
  h2's per-frame objects, state machines and copies;
* one ``_write``: ``SendQueue`` writes the bytes at once with the socket's
  non-blocking ``send`` when nothing is queued and no write of the writer task is
  in flight, and queues them for the writer task otherwise (or what the kernel
  did not take). That one decision is the only way out, so bytes can neither be
  reordered nor written around a write in progress (the hang of the purerpc era;
  tests/service/test_writer_race.py). Over TLS every write goes through the
  writer task (the TLS object's writes are async);
* no second trip through the scheduler when the bytes reached the kernel: the
  stream goes straight back to its subscription, which is its one wait per
  Summary (a handler that never waits is made to yield every ``YIELD_EVERY``).

Kept as they were, for now: one task per stream (a broadcaster writing to ready
streams from the publication itself would save the stream's wake-up, but it moves
socket writes into the aggregator's task and every client's flow-control wait,
cancellation, rate cap and trailers with them: the next step, see
docs/performance.md); h2 parsing the clients' frames,
WINDOW_UPDATE included (the read side feeds ``guard`` first, and a parser of our
own for "just WINDOW_UPDATE" would be a second HTTP/2 parser to keep exact).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import ssl
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing, suppress
from typing import Any, Final

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from anyio.streams.tls import TLSStream

from dragonflybot.config import LimitsConfig
from dragonflybot.service.grpcwire import (
    Framed,
    MessageReader,
    Rejection,
    Request,
    WireError,
    check_request,
    frame_message,
    response_headers,
    status_trailers,
    trailers_only,
)
from dragonflybot.service.guard import SMALL_DATA, Flood, FrameGuard
from dragonflybot.service.h2send import frame_data
from dragonflybot.service.pacing import tune_socket
from dragonflybot.service.purerpc_adapter import MethodEntry, Methods, RpcFailedError, StatusCode
from dragonflybot.service.security import TokenCheck
from dragonflybot.service.sendqueue import SendQueue
from dragonflybot.service.stats import LogThrottle, ServerStats

log = logging.getLogger(__name__)

READ_CHUNK: Final = 4 * 1024
"""Bytes read from the socket at once, a checkpoint after each: 4 KiB of the smallest
frames (PINGs, or HEADERS of a stream flood) is a few milliseconds of h2's work, so no
connection holds the loop longer than that. Requests are tiny; nothing honest needs more."""

STREAM_WINDOW: Final = 65_535
"""Initial stream window advertised (the protocol's default: requests are tiny)."""

MAX_FRAME: Final = 16_384
"""Largest frame accepted (the protocol's minimum maximum)."""

MAX_OUTBOX: Final = 4 * 1024 * 1024
"""Bytes queued for a client that does not read before it is cut off: far more than
one message per stream, so only a peer flooding requests it never reads reaches it."""

CLOSE_GRACE: Final = 1.0
"""Seconds the GOAWAY of a connection being cut gets to leave before the socket closes."""

SHUTDOWN_MESSAGE: Final = "server is shutting down"

MALFORMED_MESSAGE: Final = "malformed request message"
"""The status message of a request body that is not the request type (docs/api-v1.md)."""

DATA_CREDIT: Final = 2
"""Control tokens refunded per DATA frame sent: a client may acknowledge each on both the
stream's and the connection's window (legal HTTP/2, and what eager clients do)."""

INBOUND_QUEUE: Final = 4
"""Request messages a client-streaming stream may have waiting for its handler before the
server stops acknowledging its DATA: past it the client's window closes and the client
waits (HTTP/2 flow control), so a flood is throttled, never buffered without bound."""


YIELD_EVERY: Final = 64 * 1024
"""Bytes a stream may write directly (``sendqueue``) before its task must yield to the
scheduler: a handler whose messages come without a wait (a list, not a subscription)
and a client that reads fast would otherwise hold the loop until a window closes."""


class _StreamGone(Exception):
    """The stream was reset or the connection lost while a handler used it."""


class _Stream:
    """A request's state: freed the moment the stream ends, either way."""

    __slots__ = (
        "entry",
        "error",
        "gone",
        "headers_sent",
        "id",
        "lot",
        "messages",
        "mid_message",
        "reader",
        "remote_ended",
        "request",
        "scope",
        "shutdown",
        "unacked",
        "unyielded",
    )

    def __init__(self, stream_id: int, request: Request, entry: MethodEntry, max_message: int):
        self.id = stream_id
        self.request = request
        self.entry = entry
        self.reader = MessageReader(max_message)
        self.messages: deque[bytes] = deque()
        self.error: WireError | None = None
        self.remote_ended = False
        self.headers_sent = False
        self.mid_message = False
        self.gone = False
        self.shutdown = False
        self.unacked = 0
        """Flow-controlled bytes received but not acknowledged: held back while the
        inbound queue is full (client-streaming methods only)."""
        self.unyielded = 0
        """Bytes written directly since this stream's task last yielded to the scheduler."""
        self.scope = trio.CancelScope()
        self.lot = trio.lowlevel.ParkingLot()
        """Wakes the handler when the request body or an error arrives."""


class Connection:
    """Serves the streams of one accepted socket until it closes or the server shuts down."""

    def __init__(
        self,
        methods: Methods,
        socket_stream: anyio.abc.SocketStream,
        limits: LimitsConfig | None = None,
        stats: ServerStats | None = None,
        throttle: LogThrottle | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        auth: TokenCheck | None = None,
    ) -> None:
        """``stats`` and ``throttle`` are the server's, shared by its connections. With
        ``tls`` the connection begins with a TLS handshake (within ``handshake_timeout``);
        with ``auth`` every call to a service it does not leave open needs the token."""
        self._methods = methods
        self._throttle = throttle if throttle is not None else LogThrottle()
        self._raw = socket_stream
        self._sock: anyio.abc.ByteStream = socket_stream
        self._tls = tls
        self._auth = auth
        self._limits = limits if limits is not None else LimitsConfig()
        self.stats = stats if stats is not None else ServerStats()
        self._h2 = _new_h2(self._limits)
        self._guard = FrameGuard(
            control_rate=self._limits.control_frame_rate,
            control_burst=self._limits.control_frame_burst,
            reset_rate=self._limits.reset_rate,
            reset_burst=self._limits.reset_burst,
            max_header_block=self._limits.max_header_list,
        )
        self._streams: dict[int, _Stream] = {}
        self._starting: list[_Stream] = []
        raw = None if tls is not None else _raw_send(socket_stream)
        self._queue = SendQueue(raw)
        """Direct writes on plain TCP (see ``sendqueue``); over TLS the writer task writes all."""
        self._broken = False
        self._write_lot = trio.lowlevel.ParkingLot()
        self._drain_lot = trio.lowlevel.ParkingLot()
        self._window_lot = trio.lowlevel.ParkingLot()
        self._idle = trio.Event()
        self._idle.set()
        self._read_scope = trio.CancelScope()
        self._tls_scope = trio.CancelScope()
        """Cancelled by ``shutdown``: a TLS handshake in progress is not waited for."""
        self._timer = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._goaway_sent = False
        """Our GOAWAY is framed: h2 is CLOSED and the client's later frames are discarded."""
        self._handshaken = False
        self._quiet_since = trio.current_time()
        self._heard = self._quiet_since
        """When the client's last bytes arrived (keepalive PINGs follow its silence)."""
        self._ping_ack = trio.Event()
        self._ping_data = b""
        self.peer = _peer_name(socket_stream)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def buffered_bytes(self) -> int:
        """Bytes framed for this client but not yet handed to the socket (pacing keeps it small)."""
        return self._queue.pending

    @property
    def drained(self) -> bool:
        """Everything framed so far has reached the kernel (or the peer is gone)."""
        return self._broken or not self._queue.pending

    async def serve(self) -> None:
        """Run until the peer goes away, breaks a rule, or ``shutdown`` has finished.

        Always closes the socket; raises nothing but cancellation.
        """
        tune_socket(self._raw)
        if self._tls is not None and not await self._start_tls():
            with trio.CancelScope(shield=True):
                await self._raw.aclose()
            self._broken = True
            return
        try:
            async with self._sock, trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._writer)
                nursery.start_soon(self._keepalive)
                self._h2.initiate_connection()
                # h2 would end the whole connection for one stream over the limit; the
                # limit is advertised above and enforced in ``_on_request`` instead.
                self._h2.local_settings = h2.settings.Settings(
                    client=False,
                    initial_values={
                        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
                        h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self._limits.max_header_list,
                    },
                )
                self._flush()
                self._update_timer()
                if self._closing:
                    nursery.start_soon(self._close_gracefully)
                try:
                    with self._read_scope:
                        await self._read_loop()
                    # Cut (protocol error, flood, timeout, peer gone): let the GOAWAY out.
                    with trio.move_on_after(CLOSE_GRACE):
                        await self.wait_drained()
                finally:
                    self._nursery = None
                    nursery.cancel_scope.cancel()
        except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as group:
            log.debug("connection %s: socket error: %r", self.peer, group.exceptions[0])
        except* Exception:
            # A bug here must cost this connection, never the server (issue 16).
            self.stats.internal_errors += 1
            log.exception("connection %s failed", self.peer)
        finally:
            self._broken = True
            self._nursery = None
        log.debug("connection %s closed", self.peer)

    async def _start_tls(self) -> bool:
        """The TLS handshake, within ``handshake_timeout``; False (counted) if it fails."""
        assert self._tls is not None
        self._tls_scope.deadline = trio.current_time() + self._limits.handshake_timeout
        with self._tls_scope:
            try:
                self._sock = await TLSStream.wrap(
                    self._raw, server_side=True, ssl_context=self._tls, standard_compatible=False
                )
            except (ssl.SSLError, anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
                self.stats.tls_failures += 1
                reason = _tls_reason(exc)
                self._log(
                    logging.INFO, "connection %s: TLS handshake failed: %s", self.peer, reason
                )
                return False
            return True
        if not self._closing:
            self.stats.connections_timed_out += 1
            log.debug("connection %s: TLS handshake timeout", self.peer)
        return False

    async def _keepalive(self) -> None:
        """PING a client silent for ``keepalive_interval``; close if it does not answer.

        A client that vanished without a FIN (a pulled cable, a frozen process, a NAT
        that forgot the flow) would otherwise keep its connection and streams for ever,
        and a stream waiting on its window never notices.
        """
        interval = self._limits.keepalive_interval
        while True:
            await trio.sleep_until(self._heard + interval)
            if trio.current_time() < self._heard + interval:
                continue  # the client spoke meanwhile
            self._ping_ack = trio.Event()
            self._ping_data = os.urandom(8)
            with suppress(h2.exceptions.ProtocolError):
                self._h2.ping(self._ping_data)
            self._flush()
            with trio.move_on_after(self._limits.keepalive_timeout):
                await self._ping_ack.wait()
                continue
            self.stats.keepalive_timeouts += 1
            self._log(logging.INFO, "connection %s: no answer to a keepalive PING", self.peer)
            self._goaway(h2.errors.ErrorCodes.NO_ERROR, b"keepalive timeout")
            self._read_scope.cancel()
            return

    # --- reading -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        with self._timer:
            while True:
                try:
                    data = await self._sock.receive(READ_CHUNK)
                except (
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    OSError,
                ):
                    return
                now = trio.current_time()
                self._heard = now
                try:
                    self._guard.feed(data, now)
                    if self._goaway_sent:
                        # h2 is CLOSED once it has sent GOAWAY and calls any frame but
                        # GOAWAY a protocol error, answering a legal WINDOW_UPDATE or
                        # PING in flight with GOAWAY(PROTOCOL_ERROR). Nothing the client
                        # says now can matter: every stream has ended (graceful close) or
                        # the connection is being cut. Counted by the guard, then dropped.
                        continue
                    events = self._h2.receive_data(data)
                    for event in events:
                        self._on_event(event, now)
                    self._start_streams()
                except Flood as flood:
                    self._cut_for_flood(flood)
                    return
                except h2.exceptions.H2Error as exc:
                    # h2 has queued GOAWAY with the error's code, except for a bad preface.
                    self.stats.protocol_errors += 1
                    self._log(logging.INFO, "connection %s broke HTTP/2: %s", self.peer, exc)
                    if self._h2.state_machine.state != h2.connection.ConnectionState.CLOSED:
                        self._goaway(h2.errors.ErrorCodes.PROTOCOL_ERROR, b"bad preface")
                    self._flush()
                    return
                except _PeerDone:
                    return
                self._flush()
                if self._queue.queued > MAX_OUTBOX:
                    self.stats.floods_unread += 1
                    self._log(logging.WARNING, "connection %s cut: does not read", self.peer)
                    self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"not reading")
                    return
        if self._timer.cancelled_caught:
            self.stats.connections_timed_out += 1
            reason = b"handshake timeout" if not self._handshaken else b"idle"
            log.debug("connection %s: %s", self.peer, reason.decode())
            self._goaway(h2.errors.ErrorCodes.NO_ERROR, reason)

    def _cut_for_flood(self, flood: Flood) -> None:
        if flood.kind == "control":
            self.stats.floods_control += 1
        elif flood.kind == "reset":
            self.stats.floods_reset += 1
        else:
            self.stats.floods_header_block += 1
        self._log(logging.WARNING, "connection %s cut: %s", self.peer, flood)
        self._goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, str(flood).encode())

    def _log(self, level: int, message: str, *args: object) -> None:
        """Log a client's misdeed: one line per throttle interval, debug for the rest."""
        if self._throttle.allow(trio.current_time()):
            interval = self._throttle.interval
            log.log(level, message + " (more like it for %.0f s: metrics only)", *args, interval)
        else:
            log.debug(message, *args)

    def _on_event(self, event: h2.events.Event, now: float) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, h2.events.StreamEnded | h2.events.TrailersReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.remote_ended = True
                stream.lot.unpark_all()
        elif isinstance(event, h2.events.StreamReset):
            self._on_reset(event.stream_id, now)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            if isinstance(event, h2.events.RemoteSettingsChanged) and not self._handshaken:
                self._handshaken = True
                self._quiet_since = now
                self._update_timer()
            self._window_lot.unpark_all()
        elif isinstance(event, h2.events.PingAckReceived):
            if event.ping_data == self._ping_data:
                self._ping_ack.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            log.debug("connection %s: client sent GOAWAY (%s)", self.peer, event.error_code)
            raise _PeerDone
        # PING (h2 answers it), SETTINGS ACK, PRIORITY, unknown frames: counted by the guard.

    def _on_request(self, event: h2.events.RequestReceived, now: float) -> None:
        stream_id = event.stream_id
        if self._closing or len(self._streams) >= self._limits.max_streams_per_connection:
            self.stats.streams_refused += 1
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            self._guard.charge_reset(now)
            return
        checked = check_request(event.headers)
        if isinstance(checked, Rejection):
            self._reject(stream_id, checked, event.stream_ended is not None)
            self._guard.charge_reset(now)
            return
        entry = self._methods.get((checked.service, checked.method))
        if entry is None:
            name = f"{checked.service}/{checked.method}"
            rejection = Rejection(StatusCode.UNIMPLEMENTED, f"{name} is not served")
            self._reject(stream_id, rejection, event.stream_ended is not None)
            self._guard.charge_reset(now)
            return
        if self._auth is not None:
            refusal = self._auth.check(checked.service, checked.headers)
            if refusal is not None:
                # Charged like a malformed request: guessing tokens is cut as a flood.
                self.stats.unauthenticated += 1
                self._reject(stream_id, refusal, event.stream_ended is not None, counted=False)
                self._guard.charge_reset(now)
                return
        stream = _Stream(stream_id, checked, entry, self._limits.max_receive_message)
        stream.remote_ended = event.stream_ended is not None
        self._streams[stream_id] = stream
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._update_timer()
        self._starting.append(stream)

    def _start_streams(self) -> None:
        """Start the handlers of the streams this read opened and did not already reset.

        Deferred to the end of the read: a rapid-reset client's HEADERS and RST_STREAM
        usually arrive together, and such a stream then never costs a task.
        """
        if not self._starting:
            return
        assert self._nursery is not None
        for stream in self._starting:
            if not stream.gone:
                self._nursery.start_soon(self._run_stream, stream)
        self._starting.clear()

    def _reject(
        self, stream_id: int, rejection: Rejection, ended: bool, *, counted: bool = True
    ) -> None:
        if counted:
            self.stats.requests_rejected += 1
        headers = trailers_only(rejection.code, rejection.message, rejection.http_status)
        with suppress(h2.exceptions.ProtocolError):
            self._h2.send_headers(stream_id, headers, end_stream=True)
            if not ended:
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        size = event.flow_controlled_length
        if stream is None or stream.error is not None:
            self._acknowledge(event.stream_id, size)
            return
        try:
            before = len(stream.messages)
            stream.messages.extend(stream.reader.feed(event.data))
            if len(stream.messages) > before and size < SMALL_DATA:
                self._guard.credit(1)  # a small DATA frame, but it completed a request
            if len(stream.messages) > 1 and not stream.entry.client_streaming:
                # A unary request is one message: a second is an error now, not a list
                # that grows with what the client sends.
                raise WireError(StatusCode.INVALID_ARGUMENT, "more than one request message")
        except WireError as exc:
            stream.error = exc
            stream.messages.clear()
            stream.reader = MessageReader(0)  # drop what was buffered
        if stream.error is None and len(stream.messages) > INBOUND_QUEUE:
            # The handler is behind: hold the acknowledgment back until it catches up
            # (``_consumed``), so the client's window closes instead of our memory growing.
            stream.unacked += size
        else:
            # Acknowledged at once: what the stream keeps is bounded by the message cap.
            self._acknowledge(stream.id, size + stream.unacked)
            stream.unacked = 0
        if event.stream_ended is not None:
            stream.remote_ended = True
        stream.lot.unpark_all()

    def _acknowledge(self, stream_id: int, size: int) -> None:
        if size:
            with suppress(h2.exceptions.ProtocolError, ValueError):
                self._h2.acknowledge_received_data(size, stream_id)

    def _consumed(self, stream: _Stream) -> None:
        """The handler took a request message: reopen the window once the queue has room."""
        if stream.unacked and len(stream.messages) <= INBOUND_QUEUE and not stream.gone:
            self._acknowledge(stream.id, stream.unacked)
            stream.unacked = 0
            self._flush()

    def _on_reset(self, stream_id: int, now: float) -> None:
        self.stats.streams_reset += 1
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        stream.gone = True
        stream.scope.cancel()
        stream.lot.unpark_all()
        self._release(stream)
        self._stream_left()
        if stream.headers_sent:
            self._guard.credit(1)  # an answered call cancelled: part of its honest life
        else:
            # Reset before any answer: the pattern of rapid reset (CVE-2023-44487).
            self._guard.charge_reset(now)

    # --- streams -----------------------------------------------------------------------

    async def _run_stream(self, stream: _Stream) -> None:
        try:
            with stream.scope:
                await self._serve_stream(stream)
            if stream.scope.cancelled_caught and stream.shutdown and not stream.gone:
                self._end(stream, StatusCode.UNAVAILABLE, SHUTDOWN_MESSAGE)
        except _StreamGone:
            pass
        finally:
            self._release(stream)
            if self._streams.pop(stream.id, None) is not None:
                self._stream_left()

    def _release(self, stream: _Stream) -> None:
        """Acknowledge what a finished stream held back: the connection's window is shared,
        so bytes never acknowledged would shrink it for every later stream."""
        stream.messages.clear()
        if stream.unacked and not self._broken:
            self._acknowledge(stream.id, stream.unacked)
            stream.unacked = 0
            self._flush()

    async def _serve_stream(self, stream: _Stream) -> None:
        now = trio.current_time()
        timeout = stream.request.timeout
        deadline = now + timeout if timeout is not None else math.inf
        if stream.entry.client_streaming:
            with trio.move_on_at(deadline) as call:
                async with aclosing(self._requests(stream)) as requests:
                    code, message = await self._call(stream, requests)
            if call.cancelled_caught:
                code, message = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
            self._end(stream, code, message)
            return
        with trio.move_on_at(min(deadline, now + self._limits.request_timeout)) as waiting:
            payload = await self._request_message(stream)
        if waiting.cancelled_caught:
            message = "deadline exceeded" if deadline <= trio.current_time() else "no request"
            self._end(stream, StatusCode.DEADLINE_EXCEEDED, message)
            return
        if payload is None:  # a WireError, already answered
            return
        try:
            request = stream.entry.request_type.FromString(payload)
        except Exception:  # protobuf's DecodeError and friends: the body is not the type
            self.stats.requests_rejected += 1
            self._end(stream, StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE)
            return
        with trio.move_on_at(deadline) as call:
            code, message = await self._call(stream, request)
        if call.cancelled_caught:
            code, message = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
        self._end(stream, code, message)

    async def _request_message(self, stream: _Stream) -> bytes | None:
        """The single request message, once the client ended its side; None after an error."""
        while stream.error is None and not stream.remote_ended:
            await stream.lot.park()
        if stream.error is not None:
            self.stats.requests_rejected += 1
            if stream.error.code == StatusCode.RESOURCE_EXHAUSTED:
                self.stats.messages_too_large += 1
            self._end(stream, stream.error.code, stream.error.message)
            return None
        if not stream.messages or stream.reader.partial:
            self.stats.requests_rejected += 1
            text = "an incomplete message" if stream.reader.partial else "none"
            self._end(stream, StatusCode.INVALID_ARGUMENT, f"expected one request, got {text}")
            return None
        payload = stream.messages.pop()
        stream.reader = MessageReader(0)
        return payload

    async def _requests(self, stream: _Stream) -> AsyncGenerator[Any]:
        """A client-streaming method's requests, decoded, as the handler asks for them.

        Each wait for the next message is bounded by ``idle_timeout``: an idle stream
        holds a slot of the stream limit, so it may not hold it for ever. A bad message
        (oversized, not the request type, cut short) raises ``WireError``, which ends
        the call with its status whatever the handler does with it.
        """
        decode = stream.entry.request_type.FromString
        idle = self._limits.idle_timeout
        while True:
            with trio.move_on_after(idle) as waiting:
                while not stream.messages and stream.error is None and not stream.remote_ended:
                    await stream.lot.park()
            if waiting.cancelled_caught:
                raise WireError(StatusCode.DEADLINE_EXCEEDED, f"no request message for {idle:g} s")
            if stream.messages:
                payload = stream.messages.popleft()
                self._consumed(stream)
                try:
                    request = decode(payload)
                except Exception as exc:  # protobuf's DecodeError and friends
                    raise WireError(StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE) from exc
                yield request
                continue
            if stream.error is not None:
                raise stream.error
            if stream.reader.partial:
                raise WireError(StatusCode.INVALID_ARGUMENT, "the request stream ended mid-message")
            return

    async def _call(self, stream: _Stream, request: Any) -> tuple[StatusCode, str]:
        """Run the handler with ``request`` (a message, or an async iterator of them)."""
        method = functools.partial(stream.entry.handler, request=stream.request)
        name = f"{stream.request.service}/{stream.request.method}"
        try:
            if not stream.entry.streaming:
                await self._send_message(stream, _framed(await method(request)))
            else:
                async with aclosing(method(request)) as messages:
                    async for message in messages:
                        await self._send_message(stream, _framed(message))
        except RpcFailedError as exc:
            return exc.status.status_code, exc.status.status_message or ""
        except WireError as exc:  # from ``_requests``: the client's fault, not the handler's
            self.stats.requests_rejected += 1
            if exc.code == StatusCode.RESOURCE_EXHAUSTED:
                self.stats.messages_too_large += 1
            return exc.code, exc.message
        except _StreamGone:
            raise
        except Exception:
            log.exception("%s failed", name)
            return StatusCode.INTERNAL, "internal error"
        return StatusCode.OK, ""

    async def _send_message(self, stream: _Stream, data: bytes) -> None:
        """Write one framed message within the client's windows, then wait for it to leave.

        The DATA frames are framed by ``h2send.frame_data`` (as many as the windows
        allow, h2's windows charged exactly) and written after whatever h2 has queued
        (the stream's HEADERS, WINDOW_UPDATEs, PING ACKs), in one ``_write``.
        """
        h2conn = self._h2
        view = memoryview(data)
        sent = 0
        try:
            if not stream.headers_sent:
                h2conn.send_headers(stream.id, response_headers())
                stream.headers_sent = True
            stream.mid_message = True
            while True:
                pieces, size = frame_data(h2conn, stream.id, view[sent:] if sent else view)
                if size:
                    sent += size
                    pieces.insert(0, h2conn.data_to_send())
                    self._write(b"".join(pieces))
                    # Two WINDOW_UPDATEs per DATA frame sent (the stream's and the
                    # connection's, a client acknowledging every read) are fair.
                    self._guard.credit(len(pieces) // 2 * DATA_CREDIT)
                if sent >= len(view):
                    break
                self._flush()
                await self._window_lot.park()
                if stream.gone:
                    raise _StreamGone
            stream.mid_message = False
        except h2.exceptions.ProtocolError as exc:
            raise _StreamGone from exc
        if self._queue.pending and not self._broken:
            stream.unyielded = 0
            await self.wait_drained()
        else:
            # Already in the kernel. A conflating stream yields anyway when it waits for
            # its next state (``Subscription.receive``), so a second trip through the
            # scheduler per message is pure cost; a handler that yields messages without
            # waiting is still made to yield once per ``YIELD_EVERY`` bytes.
            stream.unyielded += len(view)
            if stream.unyielded >= YIELD_EVERY:
                stream.unyielded = 0
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.checkpoint_if_cancelled()
        if stream.gone:
            raise _StreamGone

    def _end(self, stream: _Stream, code: StatusCode, message: str) -> None:
        """Trailers with the status; a reset instead if a message was cut in half."""
        if stream.gone or self._broken:
            return
        try:
            if stream.mid_message:
                self._h2.reset_stream(stream.id, h2.errors.ErrorCodes.CANCEL)
            elif stream.headers_sent:
                self._h2.send_headers(stream.id, status_trailers(code, message), end_stream=True)
            else:
                self._h2.send_headers(stream.id, trailers_only(code, message), end_stream=True)
            if not stream.remote_ended and not stream.mid_message:
                # The client is still sending a request we no longer read.
                self._h2.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            return
        self._flush()

    def _stream_left(self) -> None:
        if not self._streams:
            self._quiet_since = trio.current_time()
            self._idle.set()
            self._update_timer()

    def _update_timer(self) -> None:
        if not self._handshaken:
            # Counted from the connection's creation (its accept).
            self._timer.deadline = self._quiet_since + self._limits.handshake_timeout
        elif self._streams:
            self._timer.deadline = math.inf
        else:
            self._timer.deadline = self._quiet_since + self._limits.idle_timeout

    # --- writing -----------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            self._write(data)

    def _write(self, data: bytes) -> None:
        """The one way bytes leave: now if nothing is ahead of them, else via the writer.

        ``SendQueue.write`` decides (see ``sendqueue`` for why that cannot reorder
        bytes or write around a write in progress).
        """
        if self._broken:
            return
        try:
            queued = self._queue.write(data)
        except OSError:
            # The peer is gone (reset, broken pipe): end the connection as the writer would.
            self._broken = True
            self._read_scope.cancel()
            self._drain_lot.unpark_all()
            return
        if queued:
            self._write_lot.unpark_all()

    async def _writer(self) -> None:
        queue = self._queue
        while True:
            while not queue.queued:
                await self._write_lot.park()
            data = queue.take()
            try:
                await self._sock.send(data)
            except (
                # EndOfStream: TLS over a peer that already sent close_notify (a client
                # that got what it wanted and left); the peer going away, not a bug.
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                self._broken = True
                self._read_scope.cancel()
                return
            finally:
                queue.done()
                self._drain_lot.unpark_all()

    async def wait_drained(self) -> None:
        """Wait until ``drained``; always a checkpoint."""
        await trio.lowlevel.checkpoint()
        while not self.drained:
            await self._drain_lot.park()

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        with suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream_id, code)

    def _goaway(self, code: h2.errors.ErrorCodes, debug: bytes = b"") -> None:
        with suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection(error_code=code, additional_data=debug[:200])
        self._goaway_sent = True
        self._flush()

    # --- shutdown ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Begin a graceful close: streams end with UNAVAILABLE, then GOAWAY and close."""
        if self._closing:
            return
        self._closing = True
        self._tls_scope.cancel()
        if self._nursery is not None:
            self._nursery.start_soon(self._close_gracefully)

    async def _close_gracefully(self) -> None:
        for stream in list(self._streams.values()):
            stream.shutdown = True
            stream.scope.cancel()
        await self._idle.wait()
        self._goaway(h2.errors.ErrorCodes.NO_ERROR, b"shutting down")
        await self.wait_drained()
        self._read_scope.cancel()


class _PeerDone(Exception):
    """The client sent GOAWAY: nothing more will come on this connection."""


def _new_h2(limits: LimitsConfig) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=True
    )
    conn = h2.connection.H2Connection(config)
    codes = h2.settings.SettingCodes
    conn.local_settings = h2.settings.Settings(
        client=False,
        initial_values={
            codes.MAX_CONCURRENT_STREAMS: limits.max_streams_per_connection,
            codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            codes.MAX_FRAME_SIZE: MAX_FRAME,
            codes.MAX_HEADER_LIST_SIZE: limits.max_header_list,
        },
    )
    conn.decoder.max_header_list_size = limits.max_header_list
    return conn


def _raw_send(stream: anyio.abc.SocketStream) -> Callable[[bytes], int] | None:
    """The socket's own non-blocking ``send`` (trio keeps it non-blocking), if it has one."""
    try:
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    except anyio.TypedAttributeLookupError:
        return None
    send: Callable[[bytes], int] = sock.send
    return send


def _framed(message: Any) -> bytes:
    if isinstance(message, Framed):
        return message.data
    return frame_message(message.SerializeToString())


def _tls_reason(exc: BaseException) -> str:
    """Why a handshake failed, in words (anyio may wrap the ``SSLError``)."""
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):
        return cause.reason or str(cause)
    if isinstance(exc, anyio.EndOfStream):
        return "closed by the client"
    return repr(exc)


def _peer_name(stream: anyio.abc.SocketStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "?"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)
