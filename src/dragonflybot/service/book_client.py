"""Following a ``BookSummary`` stream from Python: newest Summary wins, reconnect optional.

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
from dragonflybot.errors import TransportError
from dragonflybot.service.channel import ChannelSecurity, open_channel
from dragonflybot.service.messages import Empty
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub
from dragonflybot.service.purerpc_adapter import GRPCError, RpcFailedError

log = logging.getLogger(__name__)


@attrs.frozen(slots=True)
class ReceivedSummary:
    """One ``orderbook.Summary`` as received."""

    summary: Any
    number: int
    """1, 2, 3, ... over the client's life (across reconnects): gaps are skipped states."""
    recv_ns: int
    """``time.monotonic_ns()`` at receipt."""


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
    security: ChannelSecurity | None = None,
) -> None:
    """Receive ``host:port``'s book stream into ``out`` until cancelled.

    Without ``retry`` the first failure (cannot connect, stream ended, connection
    lost) raises ``TransportError`` with one clear sentence; with it, the client
    logs the failure and tries again after an exponential backoff with jitter.
    """
    await follow_any_book(
        [(host, port)],
        out,
        retry=retry,
        connect_timeout=connect_timeout,
        backoff=backoff,
        security=security,
    )


async def follow_any_book(
    servers: Sequence[tuple[str, int]],
    out: Fanout[ReceivedSummary],
    *,
    retry: bool = False,
    connect_timeout: float = 5.0,
    backoff: Backoff | None = None,
    security: ChannelSecurity | None = None,
) -> None:
    """``follow_book`` over several servers serving the same book (gateways on one bus).

    The servers are tried in turn: a failure moves to the next one at once, and
    only a whole round of failures waits the backoff, so a client whose gateway
    dies is on another within one connect. Without ``retry`` a round of failures
    raises the last ``TransportError``.
    """
    if not servers:
        raise ValueError("follow_any_book needs at least one server")
    backoff = backoff if backoff is not None else Backoff(0.25, 5.0, reset_after=5.0)
    counter = [0]
    index = 0
    failed_in_round = 0
    while True:
        host, port = servers[index]
        before = counter[0]
        error = await _attempt(host, port, out, counter, connect_timeout, backoff, security)
        # A server that delivered something is a fresh start for the round.
        failed_in_round = 1 if counter[0] != before else failed_in_round + 1
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


async def _attempt(
    host: str,
    port: int,
    out: Fanout[ReceivedSummary],
    counter: list[int],
    connect_timeout: float,
    backoff: Backoff,
    security: ChannelSecurity | None,
) -> TransportError:
    """One connection: returns why it ended (it always ends with an error)."""
    try:
        async with open_channel(
            host, port, connect_timeout=connect_timeout, security=security
        ) as channel:
            backoff.connected(trio.current_time())
            stub = OrderbookAggregatorStub(channel)  # type: ignore[no-untyped-call]
            try:
                async for summary in stub.BookSummary(Empty(), metadata=channel.metadata):
                    counter[0] += 1
                    out.publish(ReceivedSummary(summary, counter[0], time.monotonic_ns()))
            except RpcFailedError as exc:
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
