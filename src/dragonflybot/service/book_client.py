"""Following a book stream from Python: newest book wins, reconnect optional.

With an instrument, the client asks ``dragonflybot.v1.BookService/StreamBook`` for it;
a server without that service (``UNIMPLEMENTED``: another Keyrock implementation,
an older dragonflybot) is followed through the Keyrock ``BookSummary`` instead,
which streams the address's default instrument. Without an instrument, the
Keyrock stream as always. A server that refuses the request (unknown instrument,
depth out of range) is a ``ServiceError`` naming the reason; retrying cannot help.

The reader task takes every message off the connection as soon as it arrives
and publishes it into a ``Fanout``; displays and other consumers read that at
their own pace. So a slow consumer (a terminal redrawing a table, a pipe into a
slow program) makes the client skip states rather than let stale ones pile up
in the transport.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio
import attrs
import h2.exceptions
import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.client import Backoff
from dragonflybot.config import format_listen
from dragonflybot.errors import ServiceError, TransportError
from dragonflybot.service.book_v1_encoding import BookRequest
from dragonflybot.service.channel import ChannelSecurity, open_channel
from dragonflybot.service.messages import Empty
from dragonflybot.service.proto.book_v1_grpc import BookServiceStub
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub
from dragonflybot.service.purerpc_adapter import GRPCError, RpcFailedError

log = logging.getLogger(__name__)


@attrs.frozen(slots=True)
class ReceivedSummary:
    """One book as received: an ``orderbook.Summary``, or a ``dragonflybot.v1.Book``."""

    summary: Any
    number: int
    """1, 2, 3, ... over the client's life (across reconnects): gaps are skipped states."""
    recv_ns: int
    """``time.monotonic_ns()`` at receipt."""
    v1: bool = False
    """``summary`` is a ``dragonflybot.v1.Book`` (instrument, sequence, times, venues)."""
    recv_time_ns: int = 0
    """``time.time_ns()`` at receipt (UTC), for what a person or a log reads."""
    server: str = ""
    """The ``host:port`` it came from: with several gateways, the one followed now."""


_REFUSALS = frozenset({"NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED"})
"""Status codes that say the request itself is wrong: retrying cannot help."""


@attrs.define
class _Session:
    """What one ``follow_book``/``follow_any_book`` call keeps across reconnects and
    across servers: the numbering stays one sequence whichever gateway delivered."""

    instrument: str | None
    count: int = 0
    keyrock_only: set[tuple[str, int]] = attrs.Factory(set)
    """Servers that answered ``UNIMPLEMENTED`` for v1: use their Keyrock stream from now
    on. Per server, so a gateway without v1 in a mixed set does not downgrade the rest."""


_STREAM_ERRORS = (
    GRPCError,
    h2.exceptions.H2Error,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


async def follow_book(
    host: str,
    port: int,
    out: Fanout[ReceivedSummary],
    *,
    retry: bool = False,
    connect_timeout: float = 5.0,
    backoff: Backoff | None = None,
    instrument: str | None = None,
    security: ChannelSecurity | None = None,
) -> None:
    """Receive ``host:port``'s book stream into ``out`` until cancelled.

    ``instrument``: follow it through ``dragonflybot.v1`` (falling back to the Keyrock
    stream on a server without v1); ``None``: the Keyrock stream.

    Without ``retry`` the first failure (cannot connect, stream ended, connection
    lost) raises ``TransportError`` with one clear sentence; with it, the client
    logs the failure and tries again after an exponential backoff with jitter. A
    refused request raises ``ServiceError`` either way.
    """
    await follow_any_book(
        [(host, port)],
        out,
        retry=retry,
        connect_timeout=connect_timeout,
        backoff=backoff,
        instrument=instrument,
        security=security,
    )


async def follow_any_book(
    servers: Sequence[tuple[str, int]],
    out: Fanout[ReceivedSummary],
    *,
    retry: bool = False,
    connect_timeout: float = 5.0,
    backoff: Backoff | None = None,
    instrument: str | None = None,
    security: ChannelSecurity | None = None,
) -> None:
    """``follow_book`` over several servers serving the same book (gateways on one bus).

    The servers are tried in turn: a failure moves to the next one at once, and
    only a whole round of failures waits the backoff, so a client whose gateway
    dies is on another within one connect. Without ``retry`` a round of failures
    raises the last ``TransportError``. A refused request (``ServiceError``: unknown
    instrument, bad depth, bad credentials) raises at once: the gateways share one
    configuration, so the next one would refuse it too.
    """
    if not servers:
        raise ValueError("follow_any_book needs at least one server")
    backoff = backoff if backoff is not None else Backoff(0.25, 5.0, reset_after=5.0)
    session = _Session(instrument)
    index = 0
    failed_in_round = 0
    while True:
        host, port = servers[index]
        before = session.count
        error = await _attempt(host, port, out, session, connect_timeout, backoff, security)
        if isinstance(error, ServiceError):
            raise error
        # A server that delivered something is a fresh start for the round.
        failed_in_round = 1 if session.count != before else failed_in_round + 1
        index = (index + 1) % len(servers)
        if failed_in_round < len(servers):
            log.warning("%s; trying %s", error, format_listen(*servers[index]))
            continue
        if not retry:
            raise error
        failed_in_round = 0
        backoff.disconnected(trio.current_time())
        delay = backoff.next_delay()
        log.warning("%s; retrying in %.1f s", error, delay)
        await trio.sleep(delay)


def _publish(
    out: Fanout[ReceivedSummary], session: _Session, book: Any, v1: bool, server: str
) -> None:
    session.count += 1
    out.publish(
        ReceivedSummary(
            book,
            session.count,
            time.monotonic_ns(),
            v1=v1,
            recv_time_ns=time.time_ns(),
            server=server,
        )
    )


async def _attempt(
    host: str,
    port: int,
    out: Fanout[ReceivedSummary],
    session: _Session,
    connect_timeout: float,
    backoff: Backoff,
    security: ChannelSecurity | None,
) -> TransportError | ServiceError:
    """One connection: returns why it ended (it always ends with an error)."""
    server = format_listen(host, port)
    try:
        async with open_channel(
            host, port, connect_timeout=connect_timeout, security=security
        ) as channel:
            backoff.connected(trio.current_time())
            try:
                if session.instrument is not None and (host, port) not in session.keyrock_only:
                    stub_v1 = BookServiceStub(channel)  # type: ignore[no-untyped-call]
                    try:
                        request = BookRequest(instrument=session.instrument)
                        async for book in stub_v1.StreamBook(request, metadata=channel.metadata):
                            _publish(out, session, book, True, server)
                    except RpcFailedError as exc:
                        if exc.status.status_code.name != "UNIMPLEMENTED":
                            raise
                        session.keyrock_only.add((host, port))
                        log.warning(
                            "the server has no dragonflybot.v1 API: following its Keyrock "
                            "BookSummary, which streams the address's default instrument "
                            "(not necessarily %s)",
                            session.instrument,
                        )
                    else:
                        return TransportError("server ended the stream")
                stub = OrderbookAggregatorStub(channel)  # type: ignore[no-untyped-call]
                async for summary in stub.BookSummary(Empty(), metadata=channel.metadata):
                    _publish(out, session, summary, False, server)
            except RpcFailedError as exc:
                if exc.status.status_code.name in _REFUSALS:
                    return ServiceError(f"the server refused the stream: {_status_text(exc)}")
                return TransportError(f"server ended the stream: {_status_text(exc)}")
            except _STREAM_ERRORS:
                return TransportError("connection to the server was lost")
            return TransportError("server ended the stream")
    except TransportError as exc:
        return exc
    except _STREAM_ERRORS:
        return TransportError("connection to the server was lost")
    except BaseExceptionGroup as group:
        # purerpc's connection task group failing with the socket: still a lost connection.
        if all(isinstance(e, _STREAM_ERRORS) for e in _leaves(group)):
            return TransportError("connection to the server was lost")
        raise


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` only says the connection went away (closed, reset, broken HTTP/2),
    alone or as purerpc's task group raises it: a ``TransportError``, not a bug."""
    if isinstance(exc, BaseExceptionGroup):
        return all(isinstance(e, _STREAM_ERRORS) for e in _leaves(exc))
    return isinstance(exc, _STREAM_ERRORS)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _status_text(exc: Any) -> str:
    status = exc.status
    text: str = status.status_code.name
    if status.status_message:
        text += f" ({status.status_message})"
    return text
