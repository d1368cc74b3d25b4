"""The book-sync layer every venue shares: one book, its position, and an integrity hook.

Where a venue's snapshot comes from is the one thing that splits the venues in two:

* ``DiffSync`` (``venues.diff_sync``): the snapshot is fetched over REST and the stream
  is buffered meanwhile (Binance, Bitstamp);
* ``StreamSync`` (here): the snapshot is the first message of the subscription and the
  updates follow it on the same stream (Kraken, OKX, Coinbase, Bybit). Rebuilding the
  book means resubscribing that symbol (``Resubscribe``), not fetching anything.

Both run ``integrity()`` after every applied message. The base check is the one every
venue shares: a venue's own book crossed or locked (best bid >= best ask) is proof it is
wrong. A venue adds its own (a checksum over the top levels, the sequence chain) by
overriding ``integrity`` and calling ``super()``. A failure discards the book
(``BookReset``: the venue leaves the consolidated book at once) and starts the resync
the sync kind knows (``resync``), counted in ``SyncCounters``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar, Final

import attrs

from dragonflybot.core.book import FullDepthBook, PriceAmount, WireLevel
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    Ignored,
    LevelParser,
    ReconnectNow,
    Resubscribe,
    SyncCounters,
)

CROSSED = "crossed book: the venue's own best bid is at or above its own best ask"


class BookSync(abc.ABC):
    """One full-depth book and the state of its sync; ``position`` is ``None`` while unsynced.

    ``position`` is whatever orders the venue's messages (an update id, a sequence
    number, a timestamp).
    """

    def __init__(self, *, keep_wire: bool = False, depth: int | None = None) -> None:
        self.book = FullDepthBook(keep_wire=keep_wire)
        self.depth = depth
        """Levels per side the venue keeps us informed of (``None``: all): a venue that
        sends no delete for a level falling out of this depth has its book truncated."""
        self.levels = LevelParser()
        """The protocol's parser of wire levels: snapshot and updates share its memo."""
        self.counters = SyncCounters()
        self.position: int | None = None
        self.own_integrity = type(self).integrity is not BookSync.integrity
        """A venue check to run after every message; without one, a hot path may use
        what ``book.apply`` returns (crossed) and call ``verified`` only when true."""

    def reset(self) -> None:
        """Discard the book: unsynced until the next snapshot."""
        self.book.clear()
        self.position = None

    def connection_made(self) -> None:
        """A fresh connection: nothing carried over from the last one."""
        self.reset()

    def integrity(self) -> str | None:
        """Run after every applied message: why the book is wrong, or ``None``.

        Overridden by a venue with a checksum or a chain to verify; an override calls
        ``super().integrity()`` so the crossed-book rule holds for every venue.
        """
        if self.book.crossed():
            self.counters.crossed += 1
            return CROSSED
        return None

    @abc.abstractmethod
    def resync(self, reason: str) -> list[Event]:
        """The events that rebuild a discarded book (a REST request, a resubscription)."""

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        """A REST body answering ``FetchSnapshot(token=...)`` (only a REST sync asks)."""
        return [Ignored("no REST snapshot was requested")]

    def integrity_failed(self, reason: str) -> list[Event]:
        """Discard the book and start its resync; the venue is reported down meanwhile."""
        self.counters.integrity_failures += 1
        self.reset()
        return [BookReset(reason, gap=True), *self.resync(reason)]

    def verified(self, event_time_ms: int | None) -> list[Event]:
        """``BookChanged`` after a message was applied, or the resync if it broke the book."""
        if self.own_integrity or self.book.crossed():
            failure = self.integrity()
            if failure is not None:
                return self.integrity_failed(failure)
        return [BookChanged(event_time_ms)]


@attrs.define
class StreamCounters(SyncCounters):
    """``SyncCounters`` plus what only a stream-synced book with a checksum has."""

    verified: int = 0
    """Messages whose checksum was computed and matched."""
    checksum_failures: int = 0
    """Books discarded because the venue's checksum did not match (also in
    ``integrity_failures``)."""


MAX_FAILURES_IN_ROW: Final = 3
"""Resyncs without one verified message in between before reconnecting instead."""


class StreamSync(BookSync):
    """A book whose snapshot arrives on the stream, then updates on the same stream.

    A venue module subclasses it and provides ``resubscribe_frames`` (and, to verify a
    sequence chain, ``continues``; for a checksum, ``integrity`` reading ``checksum``,
    the value the message carried, and the best texts through ``book.wires(n)``). Its
    protocol calls ``on_snapshot``/``on_update`` (levels parsed to ``(price, amount)``)
    or, with ``keep_wire=True``, ``on_wire_snapshot``/``on_wire_update`` (levels
    parsed to ``(price, amount, checksum text)`` in one pass). Updates before the
    first snapshot are dropped, counted: the snapshot that follows contains them.

    Failing again and again without one verified message in between (a wrong
    precision, a venue sending bad books) must not loop at the venue's rate limit:
    after ``MAX_FAILURES_IN_ROW`` resubscriptions the answer is ``ReconnectNow``, and
    the session's reconnect backoff paces the retries.
    """

    update_name: ClassVar[str] = "updates"
    """The stream's update messages as the venue calls them, for drop reasons."""

    def __init__(self, *, keep_wire: bool = False, depth: int | None = None) -> None:
        super().__init__(keep_wire=keep_wire, depth=depth)
        self.counters: StreamCounters = StreamCounters()
        self.checksum: int | None = None
        """The checksum the message being verified carried (``None``: nothing to check)."""
        self.failures_in_row = 0

    @abc.abstractmethod
    def resubscribe_frames(self) -> tuple[str, ...]:
        """The unsubscribe and subscribe text frames that bring a fresh snapshot."""

    def continues(self, position: int, first: int, last: int) -> bool:
        """Whether an update moving the book from ``first`` to ``last`` follows a book at
        ``position`` (OKX: ``prevSeqId == position``); by default anything does."""
        return True

    def connection_made(self) -> None:
        """A fresh connection: no book, and past failures no longer count."""
        self.reset()
        self.failures_in_row = 0

    def checksum_mismatch(self, got: int) -> str:
        """The reason for a failed checksum, counted (for ``integrity``)."""
        self.counters.checksum_failures += 1
        return f"checksum mismatch: computed {got}, venue sent {self.checksum}"

    def resync(self, reason: str) -> list[Event]:
        self.failures_in_row += 1
        if self.failures_in_row > MAX_FAILURES_IN_ROW:
            self.failures_in_row = 0
            return [
                ReconnectNow(f"{MAX_FAILURES_IN_ROW + 1} integrity failures in a row: {reason}")
            ]
        self.counters.resubscribes += 1
        return [Resubscribe(reason, self.resubscribe_frames())]

    def _loaded(
        self, position: int, event_time_ms: int | None, checksum: int | None
    ) -> list[Event]:
        if self.depth is not None:
            self.book.truncate(self.depth)
        self.position = position
        self.checksum = checksum
        self.counters.snapshots += 1
        events = self.verified(event_time_ms)
        if self.position is not None:
            self.failures_in_row = 0
            if checksum is not None:
                self.counters.verified += 1
        return events

    def on_snapshot(
        self,
        position: int,
        bids: Sequence[PriceAmount],
        asks: Sequence[PriceAmount],
        event_time_ms: int | None,
        checksum: int | None = None,
    ) -> list[Event]:
        """The stream's snapshot: the book is now this, at ``position``."""
        self.book.load(bids, asks)
        return self._loaded(position, event_time_ms, checksum)

    def on_wire_snapshot(
        self,
        position: int,
        bids: Sequence[WireLevel],
        asks: Sequence[WireLevel],
        event_time_ms: int | None,
        checksum: int | None = None,
    ) -> list[Event]:
        """``on_snapshot`` with each level's checksum text (``keep_wire=True``)."""
        self.book.load_wire(bids, asks)
        return self._loaded(position, event_time_ms, checksum)

    def _follows(self, first: int, last: int) -> list[Event] | None:
        """``None`` when an update may be applied; else what to do instead."""
        position = self.position
        if position is None:
            self.counters.dropped += 1
            return [Dropped(1, f"{self.update_name} before the snapshot")]
        if not self.continues(position, first, last):
            self.counters.gaps += 1
            return self.integrity_failed(
                f"sequence break: book at {position}, next {self.update_name} {first}..{last}"
            )
        return None

    def _applied(self, last: int, event_time_ms: int | None, checksum: int | None) -> list[Event]:
        if self.depth is not None:
            self.book.truncate(self.depth)
        self.position = last
        self.checksum = checksum
        self.counters.applied += 1
        events = self.verified(event_time_ms)
        if self.failures_in_row and self.position is not None:
            self.failures_in_row = 0
        if checksum is not None and self.position is not None:
            self.counters.verified += 1
        return events

    def on_update(
        self,
        first: int,
        last: int,
        bids: Sequence[PriceAmount],
        asks: Sequence[PriceAmount],
        event_time_ms: int | None,
        checksum: int | None = None,
    ) -> list[Event]:
        """One update: applied and verified when it continues the book."""
        refused = self._follows(first, last)
        if refused is not None:
            return refused
        self.book.apply(bids, asks)
        return self._applied(last, event_time_ms, checksum)

    def on_wire_update(
        self,
        first: int,
        last: int,
        bids: Sequence[WireLevel],
        asks: Sequence[WireLevel],
        event_time_ms: int | None,
        checksum: int | None = None,
    ) -> list[Event]:
        """``on_update`` with each level's checksum text (``keep_wire=True``)."""
        position = self.position
        if position is None or not self.continues(position, first, last):
            refused = self._follows(first, last)
            assert refused is not None
            return refused
        self.book.apply_wire(bids, asks)
        return self._applied(last, event_time_ms, checksum)


class FramesSync(StreamSync):
    """A ``StreamSync`` that resubscribes with the frames its protocol supplies.

    The four stream venues differ only in how they build those frames, never in how
    the sync uses them, so the protocol hands over a callable: fixed frames (Coinbase,
    Bybit) or frames built at each resync by the protocol itself (Kraken numbers each
    request; OKX notes that a resubscription is under way).
    """

    def __init__(
        self,
        frames: Callable[[], tuple[str, ...]],
        *,
        keep_wire: bool = False,
        depth: int | None = None,
    ) -> None:
        super().__init__(keep_wire=keep_wire, depth=depth)
        self._frames = frames

    def resubscribe_frames(self) -> tuple[str, ...]:
        return self._frames()
