"""The FIX acceptor: a trio listener, one task group per connection, optional TLS.

Per connection three kinds of task share one ``FixSession`` (plain method calls,
never across an ``await``, so no lock is needed around it):

- the reader feeds received bytes to the session and acts on its events;
- the timer sleeps until the session's next deadline (heartbeat, TestRequest,
  logon or logout timeout) and ticks it, so a silent peer is always noticed: the
  read needs no deadline of its own;
- one streamer per market-data subscription reads a conflating ``Fanout``
  subscription and queues a 35=W or 35=X. While a slow client's writes block,
  its slots keep only the newest state: it is conflated like a gRPC stream and
  never slows the aggregator or other clients.

Writes go through one lock, in the order the session numbered them, each under
``send_timeout``: a client that stops reading is dropped, not buffered for.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.liquidity import LiquidityState
from dragonflybot.config import format_listen
from dragonflybot.core.merge import Consolidated
from dragonflybot.errors import ServiceError
from dragonflybot.fix.codec import Field
from dragonflybot.fix.marketdata import (
    COST_REPORT,
    COST_REQUEST,
    MAX_SUBSCRIPTIONS,
    BookKind,
    Entry,
    FieldRejected,
    InstrumentInfo,
    MDRequest,
    MDRequestRejected,
    RejReason,
    SubscriptionType,
    bbo_entries,
    cost_report_body,
    incremental_body,
    ladder_entries,
    parse_cost_request,
    parse_md_request,
    reject_body,
    snapshot_body,
)
from dragonflybot.fix.session import (
    AppMessage,
    Disconnect,
    Event,
    FixSession,
    LoggedOn,
    RejectReason,
    ResendAnswered,
    SessionConfig,
    SessionLimits,
)

log = logging.getLogger("dragonflybot.fix")

RECEIVE_SIZE = 65536


_EntriesOf = Callable[[Any], tuple[Entry, ...]]


@attrs.frozen
class FixInstrument:
    """One instrument as the FIX server sees it: its books' fan-outs and depths."""

    name: str
    books: Fanout[Any]
    """The BBO aggregator's published states (whatever type: ``book_of`` reads them)."""
    book_of: Callable[[Any], Consolidated]
    depth: int
    liquidity: Fanout[LiquidityState] | None = None
    liquidity_depth: int | None = None

    def info(self) -> InstrumentInfo:
        ladder = self.liquidity_depth if self.liquidity is not None else None
        return InstrumentInfo(self.depth, ladder)


@attrs.define
class FixServerStats:
    connections: int = 0
    sessions: int = 0
    """Sessions logged on so far."""
    active: int = 0
    garbled: int = 0
    """Frames dropped for a bad BodyLength or CheckSum (or unparseable fields)."""
    rejects: int = 0
    md_rejects: int = 0
    snapshots: int = 0
    incrementals: int = 0
    slow_client_drops: int = 0
    connection_errors: int = 0
    """Connections ended by an unexpected error (logged with its traceback)."""


class FixServer:
    """Bind with ``nursery.start(server.serve)`` (reports the port); ``shutdown`` logs out."""

    def __init__(
        self,
        instruments: Mapping[str, FixInstrument],
        accepted: Mapping[tuple[str, str], SessionConfig],
        host: str,
        port: int,
        *,
        limits: SessionLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        send_timeout: float = 10.0,
    ) -> None:
        self.instruments = instruments
        self._info = {name: inst.info() for name, inst in instruments.items()}
        self._accepted = accepted
        self.host = host
        self._port = port
        self.limits = limits or SessionLimits()
        self._ssl = ssl_context
        self.send_timeout = send_timeout
        self.stats = FixServerStats()
        self._connections: set[_Connection] = set()
        self._accepting = trio.CancelScope()
        self._closed = trio.Event()
        self._stopping = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self._port}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            listeners = await trio.open_tcp_listeners(self._port, host=self.host)
        except OSError as exc:
            raise ServiceError(
                f"FIX: cannot listen on {format_listen(self.host, self._port)}: {exc}"
            ) from exc
        self._port = listeners[0].socket.getsockname()[1]
        log.info("FIX acceptor listening on %s", self.address)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self._port)
                with self._accepting:
                    await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)
                for listener in listeners:
                    await listener.aclose()
        finally:
            self._closed.set()

    def shutdown(self) -> None:
        """Stop accepting and log every session out (they close when answered or timed out)."""
        self._stopping = True
        self._accepting.cancel()
        for conn in list(self._connections):
            conn.logout("server shutting down")

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.stats.connections += 1
        conn = _Connection(self, stream)
        self._connections.add(conn)
        try:
            await conn.run()
        except Exception:
            # One connection's failure must never take the acceptor (and the app) down:
            # it is a bug to fix, logged with its traceback and counted, not a crash.
            self.stats.connection_errors += 1
            log.exception("FIX %s: connection failed", conn.peer)
        finally:
            self._connections.discard(conn)

    def _wrap(self, stream: trio.SocketStream) -> trio.abc.Stream:
        if self._ssl is None:
            return stream
        return trio.SSLStream(stream, self._ssl, server_side=True)


@attrs.define
class _Subscription:
    request: MDRequest
    scope: trio.CancelScope
    last: tuple[Entry, ...] | None = None


class _Connection:
    def __init__(self, server: FixServer, stream: trio.SocketStream) -> None:
        self._server = server
        self._raw = stream
        self._stream: trio.abc.Stream = server._wrap(stream)
        self.session = FixSession(server._accepted, trio.current_time(), limits=server.limits)
        self._lock = trio.Lock()
        self._wake = trio.Event()
        self._subs: dict[str, _Subscription] = {}
        self._nursery: trio.Nursery | None = None
        self.peer = _peer_name(stream)
        self._logged_on = False

    async def run(self) -> None:
        try:
            if isinstance(self._stream, trio.SSLStream):
                with trio.move_on_after(self._server.limits.logon_timeout) as handshake:
                    await self._stream.do_handshake()
                if handshake.cancelled_caught:
                    log.info("FIX %s: TLS handshake timed out", self.peer)
                    return
            if self._server._stopping:
                return  # accepted just before shutdown: no new session
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timer)
                await self._read()
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.info("FIX %s: connection lost: %s", self.peer, exc)
        finally:
            if self._logged_on:
                self._server.stats.active -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self._stream.aclose()

    def logout(self, text: str) -> None:
        closed = self.session.logout(text, trio.current_time())
        if closed is not None and self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        elif self._nursery is not None:
            self._nursery.start_soon(self._flush_or_drop)
            self._wake.set()

    async def _read(self) -> None:
        session = self.session
        while not session.closed:
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                log.info("FIX %s: peer closed the connection", self.peer)
                return
            garbled = session.stats.garbled
            events = session.receive_data(data, trio.current_time())
            self._server.stats.garbled += session.stats.garbled - garbled
            self._wake.set()
            if await self._on_events(events):
                return

    async def _timer(self) -> None:
        session = self.session
        while True:
            self._wake = trio.Event()
            with trio.move_on_at(session.next_deadline()):
                await self._wake.wait()
                continue
            if await self._on_events(session.tick(trio.current_time())):
                assert self._nursery is not None
                self._nursery.cancel_scope.cancel()
                return

    async def _on_events(self, events: list[Event]) -> bool:
        """Act on session events and send what they queued; True once the connection ends."""
        done = False
        for event in events:
            if isinstance(event, AppMessage):
                self._on_app_message(event)
            elif isinstance(event, LoggedOn):
                self._logged_on = True
                self._server.stats.sessions += 1
                self._server.stats.active += 1
                log.info(
                    "FIX %s: logged on %s <- %s (HeartBtInt %d)",
                    self.peer,
                    event.sender_comp_id,
                    event.target_comp_id,
                    event.heartbeat,
                )
            elif isinstance(event, ResendAnswered):
                self._resnapshot()
            elif isinstance(event, Disconnect):
                log.info("FIX %s: disconnecting: %s", self.peer, event.reason)
                done = True
        await self._flush_or_drop()
        return done

    async def _flush_or_drop(self) -> None:
        """Send what the session queued; a client too slow to take it is disconnected."""
        try:
            async with self._lock:
                data = self.session.data_to_send()
                if not data:
                    return
                with trio.fail_after(self._server.send_timeout):
                    await self._stream.send_all(data)
        except trio.TooSlowError:
            self._server.stats.slow_client_drops += 1
            log.warning(
                "FIX %s: not reading for %ss: dropped", self.peer, self._server.send_timeout
            )
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()

    # --- market data -------------------------------------------------------------------------

    def _send(self, msg_type: str, body: list[Field]) -> None:
        self.session.send(msg_type, body, trio.current_time())

    def _on_app_message(self, event: AppMessage) -> None:
        msg_type = event.message.msg_type
        server = self._server
        try:
            if msg_type == "V":
                self._on_md_request(parse_md_request(event.message, server._info))
            elif msg_type == COST_REQUEST:
                request = parse_cost_request(event.message, server._info)
                liquidity = server.instruments[request.instrument].liquidity
                assert liquidity is not None  # parse_cost_request checked it
                state = liquidity.latest()
                if state is None:
                    raise MDRequestRejected(request.req_id, None, "no market data yet")
                cost = state.cost_to_trade(request.side, request.quantity)
                self._send(COST_REPORT, cost_report_body(request, cost))
            else:
                server.stats.rejects += 1
                self.session.reject(
                    event,
                    RejectReason.INVALID_MSGTYPE,
                    f"MsgType {msg_type!r} is not supported (market data only)",
                    trio.current_time(),
                    tag=35,
                )
        except FieldRejected as exc:
            server.stats.rejects += 1
            self.session.reject(event, exc.reason, exc.text, trio.current_time(), tag=exc.tag)
        except MDRequestRejected as exc:
            server.stats.md_rejects += 1
            self._send("Y", reject_body(exc.req_id, exc.reason, exc.text))

    def _on_md_request(self, request: MDRequest) -> None:
        subs = self._subs
        if request.kind is SubscriptionType.UNSUBSCRIBE:
            sub = subs.pop(request.req_id, None)
            if sub is None:
                raise MDRequestRejected(request.req_id, None, "no subscription with this MDReqID")
            sub.scope.cancel()
            return
        if request.req_id in subs:
            raise MDRequestRejected(
                request.req_id, RejReason.DUPLICATE_MDREQID, "MDReqID already subscribed"
            )
        if len(subs) >= MAX_SUBSCRIPTIONS:
            raise MDRequestRejected(
                request.req_id,
                RejReason.INSUFFICIENT_BANDWIDTH,
                f"at most {MAX_SUBSCRIPTIONS} subscriptions per session",
            )
        sub = _Subscription(request, trio.CancelScope())
        if request.kind is SubscriptionType.SUBSCRIBE:
            subs[request.req_id] = sub
        assert self._nursery is not None
        self._nursery.start_soon(self._stream_book, sub)

    def _entries_of(
        self, request: MDRequest
    ) -> tuple[Fanout[Any], Callable[[Any], tuple[Entry, ...]]]:
        inst = self._server.instruments[request.instrument]
        if request.book is BookKind.BBO:
            book_of = inst.book_of
            return inst.books, lambda value: bbo_entries(book_of(value), request)
        assert inst.liquidity is not None  # parse_md_request checked it
        return inst.liquidity, lambda state: ladder_entries(state.ladder, request)

    async def _stream_book(self, sub: _Subscription) -> None:
        request = sub.request
        fanout, entries_of = self._entries_of(request)
        stats = self._server.stats
        with sub.scope, fanout.subscribe() as states:
            async for value in states:
                entries = entries_of(value)
                if request.incremental and sub.last is not None:
                    body = incremental_body(request, sub.last, entries)
                    if body is None:
                        continue
                    self._send("X", body)
                    stats.incrementals += 1
                else:
                    self._send("W", snapshot_body(request, entries))
                    stats.snapshots += 1
                sub.last = entries
                await self._flush_or_drop()
                if request.kind is SubscriptionType.SNAPSHOT:
                    return

    def _resnapshot(self) -> None:
        """After a gap fill the client lost our messages: incremental books start over."""
        for sub in self._subs.values():
            if sub.request.incremental and sub.last is not None:
                self._send("W", snapshot_body(sub.request, sub.last))
                self._server.stats.snapshots += 1


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return format_listen(str(host), int(port))
