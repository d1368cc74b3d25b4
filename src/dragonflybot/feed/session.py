"""One connection to a venue: the subscriber and listener layers of a feed.

Shape (per connection, all in one nursery):

* the session's own task owns the socket and is the protocol's driver, as h11 and
  wsproto are driven by the loop that owns their socket: ``await stream.receive()``,
  stamp the frame, hand it to the venue's sans-I/O protocol, apply the events (the
  book changes inside the protocol) and put a changed top N into the publisher's
  latest-value slot (``feed.handoff``), which never waits. No second task and no
  queue sit between the socket and the book: each would cost a scheduler round per
  batch of frames (docs/performance.md, "Fewer hops", has the measured cost). The
  frames one socket read brings in are handled without a checkpoint between them
  (the stream hands out buffered frames without yielding), so the aggregator wakes
  once per batch and merges the newest views. A slow book shows as TCP back-pressure:
  the socket is not read while a frame is being applied;
* snapshot fetch tasks (depth mode) — REST requests run beside the stream so frames
  keep being read and buffered by the protocol; the body is handed to the protocol the
  moment it arrives, between two frames (one trio thread: each handler runs to its end
  without a checkpoint, so frames and the body reach the protocol in arrival order);
* watchdog task — sleeps until the next deadline (ack, stale, dead) and judges it
  then: with frames flowing it wakes once per ``stale_after``, never per frame;
* heartbeat task — every ``heartbeat_interval``, the venue's application heartbeat
  (Bitstamp's ``bts:heartbeat``, answered by the venue's own application) or, for a
  venue without one, a WebSocket ping (its pong proves the connection).

Every wait has a deadline: the ack (``ack_timeout``), each REST request
(``rest_timeout``), each send (``connect_timeout``), and the connection itself.
Quiet is not dead: liveness is judged by the connection — any frame, a heartbeat
reply, or (for a venue without an application heartbeat) a pong — so a quiet pair
on a healthy connection stays in the book, its data age tracked apart
(``FeedStats.data_at``). A connection silent for ``stale_after`` marks the venue
stale (out of the book), for ``dead_after`` ends it. The session never returns
normally: it ends by raising
``TransportError`` (connection lost or dead), ``ReconnectRequested`` (the venue
asked) or ``SubscriptionError`` (rejected, or no ack in time).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import NoReturn

import trio

from dragonflybot.client import Backoff, HttpStatusError, MessageStream, RestClient
from dragonflybot.config import VenueConfig
from dragonflybot.errors import (
    DecodeError,
    ReconnectRequested,
    SubscriptionError,
    TransportError,
)
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.stats import FeedStats
from dragonflybot.feed.throttle import BurstLimiter
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    FetchSnapshot,
    Ignored,
    ReconnectNow,
    Resubscribe,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
    VenueNotice,
    VenueProtocol,
)

log = logging.getLogger("dragonflybot.feed")

EXCERPT = 200
"""Characters of a malformed frame shown in the log."""


def excerpt(frame: str | bytes) -> str:
    """The start of a frame for a log line."""
    if isinstance(frame, bytes):
        shown = repr(frame[:EXCERPT])
        return shown + ("..." if len(frame) > EXCERPT else "")
    return frame[:EXCERPT] + ("..." if len(frame) > EXCERPT else "")


class Session:
    """Runs one connection; the runner makes a new one per attempt."""

    def __init__(
        self,
        protocol: VenueProtocol,
        config: VenueConfig,
        stats: FeedStats,
        publisher: ViewPublisher,
        rest: RestClient | None,
        malformed_log: BurstLimiter,
        on_ready: Callable[[], None],
    ) -> None:
        self.protocol = protocol
        self.config = config
        self.stats = stats
        self.publisher = publisher
        self.rest = rest
        self.rejected = False
        """The venue refused the subscription (as opposed to a transport failure)."""
        self.ready_at: float | None = None
        """``trio.current_time()`` when the feed became ready on this connection."""
        self._malformed_log = malformed_log
        self._on_ready = on_ready
        self._venue = protocol.venue
        self._stale = False
        self._last_frame = 0.0
        """When the last frame arrived (any frame: data, replies, heartbeats)."""
        self._ack_deadline = math.inf
        self._event_time: int | None = None
        self._fetch_scope: trio.CancelScope | None = None
        self._app_heartbeat = protocol.heartbeat() is not None
        """The venue answers an application heartbeat: its replies, not pongs, prove it."""
        self._stream: MessageStream | None = None
        self._nursery: trio.Nursery | None = None

    # --- running ------------------------------------------------------------------------

    async def run(self, stream: MessageStream) -> NoReturn:
        self._stream = stream
        now = trio.current_time()
        self._last_frame = now
        self._ack_deadline = now + self.config.ack_timeout
        self.stats.state = "connecting"
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._dispatch(self.protocol.connection_made(), b"", frame=False)
            nursery.start_soon(self._heartbeats, self.protocol.heartbeat())
            nursery.start_soon(self._watch)
            await self._read(stream)
        raise AssertionError("unreachable: the read loop only ends by raising")

    async def _read(self, stream: MessageStream) -> NoReturn:
        """The socket read loop, and the protocol's driver: receive, stamp, apply.

        The stamp is taken as the frame leaves the WebSocket client, before any work
        on it. Ends by raising (``TransportError`` from the stream, or what a frame's
        events raise: ``SubscriptionError``, ``ReconnectRequested``).
        """
        receive = stream.receive
        monotonic_ns = time.monotonic_ns
        on_frame = self._on_frame
        while True:
            frame = await receive()
            on_frame(frame, monotonic_ns())

    async def _watch(self) -> NoReturn:
        """Enforce the ack, stale and dead deadlines: sleep until the next, judge it.

        A frame moves a deadline without waking this task; it finds that out when it
        wakes and sleeps again, so flowing frames cost it nothing.
        """
        config = self.config
        while True:
            alive_at = self._alive_at()
            deadline = alive_at + max(config.dead_after, config.stale_after)
            if not self._stale:
                deadline = min(deadline, alive_at + config.stale_after)
            else:
                # Stale: wake at the next heartbeat too, to see a connection come back.
                deadline = min(deadline, trio.current_time() + config.heartbeat_interval)
            if not self.protocol.subscribed:
                deadline = min(deadline, self._ack_deadline)
            await trio.sleep_until(deadline)
            self._judge(trio.current_time())

    def _judge(self, now: float) -> None:
        """Raise or change the staleness for the deadlines passed at ``now``."""
        config = self.config
        alive_at = self._alive_at()
        dead_at = alive_at + max(config.dead_after, config.stale_after)
        if not self.protocol.subscribed and now >= self._ack_deadline:
            raise SubscriptionError(
                self._venue,
                f"no acknowledgement of {', '.join(self.protocol.streams)} "
                f"within {config.ack_timeout:g} s",
            )
        if now >= dead_at:
            raise TransportError(
                f"{self._venue}: connection silent for {now - alive_at:.1f} s, "
                "connection presumed dead"
            )
        if not self._stale and now >= alive_at + config.stale_after:
            self._go_stale(now)
        elif self._stale and now < alive_at + config.stale_after:
            self._revive()

    def _alive_at(self) -> float:
        """When the connection last proved alive: a frame, or a pong (no app heartbeat)."""
        stream = self._stream
        if stream is None or self._app_heartbeat:
            return self._last_frame
        return max(self._last_frame, stream.last_received)

    def _revive(self) -> None:
        """The connection answers again (pongs) though no frame came: back in the book."""
        self._stale = False
        log.info("%s: connection alive again", self._venue)
        self._after(True, time.monotonic_ns())

    def _go_stale(self, now: float) -> None:
        self._stale = True
        self.stats.stale_periods += 1
        self.stats.state = "stale"
        log.warning(
            "%s: stale, connection silent for %.1f s (stale_after=%g s)",
            self._venue,
            now - self._alive_at(),
            self.config.stale_after,
        )
        self.publisher.down("stale", "stale")

    def _on_frame(self, frame: str | bytes, recv_ns: int) -> None:
        stats = self.stats
        stats.frames += 1
        self._last_frame = now = trio.current_time()
        events = self.protocol.receive(frame)
        changed = self._dispatch(events, frame)
        if changed:
            stats.data_at = now
        if self._stale:
            self._stale = False
            log.info("%s: frames flow again", self._venue)
            changed = True  # the publisher sends a fresh view: the venue was reported down
        self._after(changed, recv_ns)

    def _after(self, changed: bool, recv_ns: int) -> None:
        protocol = self.protocol
        if (
            changed
            and protocol.has_book
            and self.publisher.publish(protocol, self._event_time, recv_ns)
        ):
            # Once per forwarded view (top-N changes only), not per frame: one clock read.
            self.stats.receive_to_parsed.observe_ns(time.monotonic_ns() - recv_ns)
        stats = self.stats
        if protocol.synced:
            if stats.state != "live" and not self._stale:
                stats.state = "live"
            if self.ready_at is None:
                self.ready_at = trio.current_time()
                log.info("%s: live (%s)", self._venue, ", ".join(protocol.streams))
                self._on_ready()
        elif protocol.subscribed and not self._stale:
            stats.state = "syncing"

    # --- events -------------------------------------------------------------------------

    def _dispatch(self, events: list[Event], source: str | bytes, *, frame: bool = True) -> bool:
        """Carry out the protocol's events; True when the book changed.

        ``source`` is the frame (or REST body) the events came from, for log lines;
        ``frame`` says whether it counts as a received frame.
        """
        changed = False
        malformed = False
        for event in events:
            if type(event) is BookChanged:
                changed = True
                if event.event_time_ms is not None:
                    self._event_time = event.event_time_ms
            elif isinstance(event, Skipped):
                malformed = True
                self._report_malformed(event.reason, source)
            elif isinstance(event, Ignored):
                self.stats.ignored += 1
            elif isinstance(event, Dropped):
                log.debug("%s: %d dropped: %s", self._venue, event.count, event.reason)
            elif isinstance(event, FetchSnapshot):
                self._start_fetch(event)
            elif isinstance(event, BookReset):
                self._on_reset(event)
            elif isinstance(event, Subscribed):
                self.stats.connects += 1
                log.info("%s: subscribed to %s", self._venue, ", ".join(event.streams))
            elif isinstance(event, SubscriptionRejected):
                self.rejected = True
                self.stats.rejections += 1
                raise SubscriptionError(
                    self._venue, f"subscription to {event.stream} rejected: {event.message}"
                )
            elif isinstance(event, ReconnectNow):
                raise ReconnectRequested(self._venue, f"venue asked to reconnect ({event.reason})")
            elif isinstance(event, VenueNotice):
                self.stats.notices += 1
                log.warning("%s: venue reported: %s", self._venue, event.message)
            elif isinstance(event, SendText):
                assert self._nursery is not None
                self._nursery.start_soon(self._send, event.text)
            elif isinstance(event, Resubscribe):
                self._resubscribe(event)
        if frame:
            if malformed:
                self.stats.malformed += 1
            else:
                self.stats.parsed += 1
        return changed

    def _report_malformed(self, reason: str, frame: str | bytes) -> None:
        suppressed = self._malformed_log.allow(trio.current_time())
        if suppressed is None:
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning(
            "%s: malformed frame skipped: %s; frame: %s%s",
            self._venue,
            reason,
            excerpt(frame),
            more,
        )

    def _on_reset(self, event: BookReset) -> None:
        stats = self.stats
        stats.resyncs += 1
        if event.gap:
            stats.gaps += 1
        stats.state = "syncing"
        log.warning("%s: book discarded, resyncing: %s", self._venue, event.reason)
        self.publisher.down(f"resync: {event.reason}", "syncing")

    def _resubscribe(self, event: Resubscribe) -> None:
        """Rebuild this symbol's book from a fresh stream snapshot, on this connection.

        The ``BookReset`` before it already took the venue out of the consolidated
        book; the frames go out in order from one task (unsubscribe before subscribe).
        """
        self.stats.resubscribes += 1
        log.warning(
            "%s: resubscribing %s: %s",
            self._venue,
            ", ".join(self.protocol.streams),
            event.reason,
        )
        assert self._nursery is not None
        self._nursery.start_soon(self._send_all, event.frames)

    # --- I/O helpers --------------------------------------------------------------------

    async def _send_all(self, frames: tuple[str, ...]) -> None:
        for text in frames:
            await self._send(text)

    async def _send(self, text: str) -> None:
        assert self._stream is not None
        try:
            with trio.fail_after(self.config.connect_timeout):
                await self._stream.send(text)
        except trio.TooSlowError as exc:
            raise TransportError(
                f"{self._venue}: send not done within {self.config.connect_timeout:g} s"
            ) from exc

    async def _heartbeats(self, text: str | None) -> NoReturn:
        """The venue's heartbeat, or a WebSocket ping, every ``heartbeat_interval``."""
        interval = self.config.heartbeat_interval
        stream = self._stream
        assert stream is not None
        while True:
            await trio.sleep(interval)
            if text is not None:
                await self._send(text)
            elif trio.current_time() - self._alive_at() >= interval:
                # Only a quiet connection is pinged: flowing frames prove it already.
                # A backend may wait for the pong here; a missing pong is judged by
                # ``_wait`` (the connection goes stale, then dead), never here.
                with trio.move_on_after(interval):
                    await stream.ping()

    def _start_fetch(self, request: FetchSnapshot) -> None:
        if self._fetch_scope is not None:
            self._fetch_scope.cancel()
        scope = trio.CancelScope()
        self._fetch_scope = scope
        assert self._nursery is not None
        self._nursery.start_soon(self._fetch, request, scope)

    async def _fetch(self, request: FetchSnapshot, scope: trio.CancelScope) -> None:
        """Fetch until a body arrives; failures back off, never a tight loop."""
        config = self.config
        rest = self.rest
        if rest is None:
            raise TransportError(f"{self._venue}: depth mode needs a REST client")
        backoff = Backoff(config.backoff_base, max(config.backoff_cap, config.backoff_base))
        with scope:
            await trio.sleep(request.delay)
            while True:
                self.stats.snapshot_requests += 1
                try:
                    with trio.fail_after(config.rest_timeout):
                        body = await rest.get_bytes(request.url, params=dict(request.params))
                    break
                except (TransportError, DecodeError, trio.TooSlowError) as exc:
                    self.stats.snapshot_failures += 1
                    delay = backoff.next_delay()
                    if isinstance(exc, HttpStatusError) and exc.retry_after is not None:
                        delay = max(delay, exc.retry_after)
                    reason = str(exc) or f"no answer within {config.rest_timeout:g} s"
                    log.warning(
                        "%s: snapshot %s failed (%s); retrying in %.2f s",
                        self._venue,
                        request.url,
                        reason,
                        delay,
                    )
                    await trio.sleep(delay)
            # No checkpoint since the body arrived: no frame comes in between, and the
            # protocol sees body and frames in arrival order (a stale token it ignores).
            recv_ns = time.monotonic_ns()
            events = self.protocol.snapshot_received(request.token, body)
            self._after(self._dispatch(events, body, frame=False), recv_ns)
