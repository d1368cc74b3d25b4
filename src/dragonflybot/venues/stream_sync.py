"""Books synced from the stream itself: snapshot message, updates, integrity check, resubscribe.

Kraken and OKX (and later Coinbase and Bybit) need no REST snapshot: subscribing
makes the venue send the whole book, then updates. What every such venue shares
lives here once:

* ``StreamSync`` holds the ``WireBook`` and its state. A snapshot message installs
  a book; an update before any snapshot is dropped (it belongs to a subscription
  whose book we do not have); after every applied message the book is truncated to
  the subscribed depth (when the venue requires it) and the venue's integrity hook
  runs (``Verify``: Kraken and OKX compare a CRC32). A failed check discards the
  book at once, so it is never published, and answers with the venue's frames to
  unsubscribe and subscribe again that one instrument: a fresh snapshot follows.
  A venue's continuity rule that runs *before* applying (OKX's ``seqId`` chain)
  reports through ``fail`` to the same effect.
* ``StreamBookProtocol`` is the ``VenueProtocol`` skeleton on top: state, reads,
  skip and failure events; a venue module adds its wire schema, its subscribe,
  unsubscribe and ack messages and its rules.

How a resubscribe is expressed with today's events: ``BookReset(reason, gap=True)``
(the session marks the venue down: nothing is published until the next snapshot
verifies) followed by one ``SendText`` per frame to send. Failing again and again
without a single verified message in between (a wrong precision, a venue sending
bad books) must not loop at the venue's rate limit: after ``MAX_FAILURES_IN_ROW``
the answer is ``ReconnectNow`` instead, and the session's reconnect backoff paces
the retries.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from dragonflybot.config import Mode
from dragonflybot.core.book import Side
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    ReconnectNow,
    SendText,
    Skipped,
    Subscribed,
    SyncCounters,
    VenueProtocol,
)
from dragonflybot.venues.wire_book import WireBook, WireLevel

Verify = Callable[[WireBook, int], str | None]
"""``(book after the message, the message's checksum) -> why it does not match``, or None."""

MAX_FAILURES_IN_ROW: Final = 3
"""Integrity failures without a verified message in between before reconnecting instead."""


@attrs.define
class StreamCounters(SyncCounters):
    """``SyncCounters`` plus what only a stream-synced book has."""

    verified: int = 0
    """Messages whose checksum was computed and matched."""
    checksum_failures: int = 0
    chain_breaks: int = 0
    """Continuity breaks detected before applying (sequence ids)."""
    resubscribes: int = 0
    """Resubscriptions sent after a failure."""


class StreamSync:
    """One stream-synced book; ``live`` while it holds a verified book."""

    def __init__(
        self,
        name: str,
        verify: Verify,
        resubscribe: Callable[[], Sequence[str]],
        *,
        depth: int | None = None,
    ) -> None:
        self.name = name
        """The channel as the venue calls it, for reasons."""
        self.book = WireBook()
        self.counters = StreamCounters()
        self.live = False
        self.depth = depth
        """Truncate each side to this many levels after every message (``None``: never)."""
        self._verify = verify
        self._resubscribe = resubscribe
        self._failures_in_row = 0

    def reset(self) -> None:
        """Forget the book (a new connection, or a failure): wait for a snapshot."""
        self.book.clear()
        self.live = False

    def on_snapshot(
        self,
        bids: Sequence[WireLevel],
        asks: Sequence[WireLevel],
        checksum: int | None,
        event_time_ms: int | None,
    ) -> list[Event]:
        """Install a snapshot message (validated and parsed in full by the caller)."""
        book = self.book
        book.load(bids, asks)
        self.counters.snapshots += 1
        return self._check(checksum, event_time_ms, "snapshot")

    def on_update(
        self,
        bids: Sequence[WireLevel],
        asks: Sequence[WireLevel],
        checksum: int | None,
        event_time_ms: int | None,
    ) -> list[Event]:
        """Apply an update message, or drop it when no snapshot is held."""
        if not self.live:
            self.counters.dropped += 1
            return [Dropped(1, f"{self.name} update before its snapshot")]
        self.book.apply(bids, asks)
        return self._check(checksum, event_time_ms, "update")

    def _check(self, checksum: int | None, event_time_ms: int | None, what: str) -> list[Event]:
        book = self.book
        if self.depth is not None:
            book.truncate(self.depth)
        if checksum is not None:
            mismatch = self._verify(book, checksum)
            if mismatch is not None:
                self.counters.checksum_failures += 1
                return self.fail(f"{self.name} {what} checksum mismatch: {mismatch}")
            self.counters.verified += 1
        self.live = True
        self._failures_in_row = 0
        self.counters.applied += 1
        return [BookChanged(event_time_ms)]

    def fail(self, reason: str) -> list[Event]:
        """Discard the book and resubscribe (or reconnect after too many failures in a row)."""
        self.reset()
        self.counters.gaps += 1
        self._failures_in_row += 1
        events: list[Event] = [BookReset(reason, gap=True)]
        if self._failures_in_row > MAX_FAILURES_IN_ROW:
            self._failures_in_row = 0
            events.append(
                ReconnectNow(f"{MAX_FAILURES_IN_ROW + 1} integrity failures in a row: {reason}")
            )
            return events
        self.counters.resubscribes += 1
        events.extend(SendText(text) for text in self._resubscribe())
        return events

    def chain_break(self, reason: str) -> list[Event]:
        """A continuity rule refused a message before it was applied."""
        self.counters.chain_breaks += 1
        return self.fail(reason)

    def new_connection(self) -> None:
        """A fresh connection: no book, and past failures no longer count."""
        self.reset()
        self._failures_in_row = 0


class StreamBookProtocol(VenueProtocol):
    """A ``VenueProtocol`` whose book comes from the stream (``StreamSync``)."""

    mode: Mode = "diff"
    """The book is kept from updates; the snapshot comes in the stream, not from REST."""
    counters: StreamCounters

    def __init__(
        self, venue: str, ws_url: str, rest_url: str, streams: tuple[str, ...], sync: StreamSync
    ) -> None:
        self.venue = venue
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.streams = streams
        self.sync = sync
        self.counters = sync.counters
        self._subscribed = False
        self._book = sync.book

    @abc.abstractmethod
    def _subscribe_texts(self) -> list[str]:
        """The frames to send on a fresh connection."""

    # --- state --------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def synced(self) -> bool:
        return self._subscribed and self.sync.live

    @property
    def has_book(self) -> bool:
        return self.sync.live

    @property
    def book(self) -> WireBook:
        """The whole book (for checks; publish through ``top_*``)."""
        return self._book

    def top_bids(self, n: int) -> Side:
        return self._book.bids.top(n)

    def top_asks(self, n: int) -> Side:
        return self._book.asks.top(n)

    def top(self, n: int) -> tuple[Side, Side]:
        return self._book.bids.top(n), self._book.asks.top(n)

    # --- driving ------------------------------------------------------------------------

    def connection_made(self) -> list[Event]:
        self._subscribed = False
        self.sync.new_connection()
        return [SendText(text) for text in self._subscribe_texts()]

    # --- for the venue modules ----------------------------------------------------------

    def _skip(self, reason: str) -> list[Event]:
        self.counters.skipped += 1
        return [Skipped(reason)]

    def _skip_book(self, reason: str, *, snapshot: bool = False) -> list[Event]:
        """A message recognisably for our book but malformed: skipped, and resynced when
        that leaves a held book behind the venue, or the awaited snapshot lost (a held
        book is never silently behind, and no snapshot comes without a subscribe)."""
        self.counters.skipped += 1
        events: list[Event] = [Skipped(reason)]
        if self.sync.live or snapshot:
            events.extend(self.sync.fail(f"malformed {self.sync.name} message: {reason}"))
        return events

    def _acknowledged(self) -> list[Event]:
        self._subscribed = True
        return [Subscribed(self.streams)]
