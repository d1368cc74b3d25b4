"""``run_feed``: one venue feed for the life of the service, reconnecting as needed.

Reconnect policy: a lost connection is retried after an exponential backoff with
full jitter (``backoff_base``..``backoff_cap``), whose attempt count starts over
once a connection stayed healthy for ``healthy_after`` seconds. A venue that asks
us to go (``bts:request_reconnect``, ``serverShutdown``) is reconnected at once,
and so is a connection that ends after a healthy period (Binance closes every
connection at 24 h): neither says anything about the venue being unwell. Every
reconnect is logged and counted, and the venue is reported down to the
aggregator at once so it never merges a book that is no longer maintained.

A rejected subscription before the feed was ever ready ends ``run_feed`` with the
``SubscriptionError`` (so ``nursery.start`` fails with a message naming venue and
stream: retrying a refused symbol cannot help); once the feed has been live, the
same error is treated like any other failure and retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import NoReturn

import trio

from dragonflybot.client import Backoff, MessageStream, RestClient, connect_websocket
from dragonflybot.config import VenueConfig
from dragonflybot.core.view import VenueUpdate
from dragonflybot.errors import (
    ConfigError,
    DragonflybotError,
    ReconnectRequested,
    SubscriptionError,
    TransportError,
    VenueError,
)
from dragonflybot.feed.handoff import forward
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.session import Session
from dragonflybot.feed.stats import FeedStats
from dragonflybot.feed.throttle import BurstLimiter
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues.base import VenueProtocol
from dragonflybot.venues.registry import VENUES, create_protocol
from dragonflybot.venues.spec import VenueSpec

log = logging.getLogger("dragonflybot.feed")

Connector = Callable[..., AbstractAsyncContextManager[MessageStream]]
"""``client.connect_websocket``'s shape: ``connect(url, *, connect_timeout=...)``."""

_PRIORITY: tuple[type[DragonflybotError], ...] = (
    SubscriptionError,
    ReconnectRequested,
    VenueError,
    TransportError,
)


def _pick(group: BaseExceptionGroup[BaseException]) -> DragonflybotError | None:
    """The error that ended a connection, from a group of them (tasks failing together).

    ``None`` when the group holds anything but connection-level errors: those are
    bugs or configuration errors and must propagate unchanged.
    """
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if not leaves or not all(isinstance(e, (TransportError, VenueError)) for e in leaves):
        return None
    for kind in _PRIORITY:
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return None


async def run_feed(
    config: VenueConfig,
    instrument: str,
    depth: int,
    send: trio.MemorySendChannel[VenueUpdate],
    *,
    stats: FeedStats | None = None,
    rest_client: RestClient | None = None,
    connect: Connector = connect_websocket,
    venues: Mapping[str, VenueSpec] = VENUES,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``instrument``'s book at ``config.name`` and send its top ``depth`` into ``send``.

    Start it with ``await nursery.start(run_feed, ...)``: that returns once the
    subscription is acknowledged (and, in depth mode, the book is synced). It runs
    until cancelled and closes ``send`` when it ends. Connection failures are
    retried forever; wrap ``nursery.start`` in ``trio.fail_after`` for a startup
    deadline. ``rest_client`` (depth mode) defaults to one owned by the feed; ``connect``
    opens the WebSocket (a wrapper can observe each frame, as the latency benchmark does);
    ``venues`` is where ``config.name`` is looked up (the registry unless a test runs a
    venue of its own).
    """
    async with send:
        if depth < 1:
            raise ConfigError(f"{config.name}: depth must be >= 1, got {depth}")
        protocol = create_protocol(config, instrument, venues)
        stats = stats if stats is not None else FeedStats()
        stats.venue = protocol.venue
        stats.sync = protocol.counters
        slot = Mailbox[VenueUpdate]()
        protocol.read_depth(depth)  # the publisher reads no deeper: parse no deeper
        publisher = ViewPublisher(protocol.venue, depth, slot, stats)
        async with AsyncExitStack() as stack:
            if rest_client is None and protocol.uses_rest:
                rest_client = await stack.enter_async_context(
                    RestClient(timeout=config.rest_timeout, max_retries=0)
                )
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(forward, slot, send)
                    await _connect_forever(
                        protocol, config, stats, publisher, rest_client, connect, task_status
                    )
            except ExceptionGroup as group:
                # Give the caller (often ``nursery.start``) the feed's own error, not
                # the group our internal nursery wrapped it in.
                if len(group.exceptions) == 1 and isinstance(
                    group.exceptions[0], DragonflybotError
                ):
                    error = group.exceptions[0]
                    raise error from error.__cause__
                raise


async def _connect_forever(
    protocol: VenueProtocol,
    config: VenueConfig,
    stats: FeedStats,
    publisher: ViewPublisher,
    rest: RestClient | None,
    connect: Connector,
    task_status: trio.TaskStatus[None],
) -> NoReturn:
    venue = protocol.venue
    backoff = Backoff(
        config.backoff_base,
        max(config.backoff_cap, config.backoff_base),
        reset_after=config.healthy_after,
    )
    malformed_log = BurstLimiter(1.0)
    started = False

    def on_ready() -> None:
        nonlocal started
        backoff.connected(trio.current_time())
        if not started:
            started = True
            task_status.started()

    while True:
        stats.state = "connecting"
        session = Session(protocol, config, stats, publisher, rest, malformed_log, on_ready)
        error = await _attempt(session, protocol, config, connect)
        now = trio.current_time()
        if isinstance(error, SubscriptionError) and session.rejected and not started:
            stats.state = "down"
            stats.last_error = str(error)
            raise error
        healthy = session.ready_at is not None and now - session.ready_at >= config.healthy_after
        backoff.disconnected(now)
        asked = isinstance(error, ReconnectRequested)
        delay = 0.0 if asked or healthy else backoff.next_delay()
        stats.reconnects += 1
        stats.last_error = str(error)
        stats.state = "down"
        publisher.down(f"disconnected: {error}")
        log.warning(
            "%s: connection ended (%s); reconnect #%d in %.2f s",
            venue,
            error,
            stats.reconnects,
            delay,
        )
        await trio.sleep(delay)


async def _attempt(
    session: Session, protocol: VenueProtocol, config: VenueConfig, connect: Connector
) -> DragonflybotError:
    """Connect and run one session; returns the error that ended it."""
    try:
        async with connect(protocol.ws_url, connect_timeout=config.connect_timeout) as stream:
            await session.run(stream)
    except (TransportError, VenueError) as exc:
        return exc
    except ExceptionGroup as group:
        error = _pick(group)
        if error is None:
            raise
        return error
