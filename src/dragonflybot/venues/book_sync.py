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
from typing import ClassVar

from dragonflybot.core.book import FullDepthBook, PriceAmount, WireLevel
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    Ignored,
    LevelParser,
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


class StreamSync(BookSync):
    """A book whose snapshot arrives on the stream, then updates on the same stream.

    A venue module subclasses it and provides ``resubscribe_frames`` (and, to verify a
    sequence chain, ``continues``; for a checksum, ``integrity``). Its protocol calls
    ``on_snapshot`` for the subscription's snapshot message and ``on_update`` for each
    update, with levels already parsed (and the wire strings when the checksum needs
    them, see ``keep_wire``). Updates before the first snapshot are dropped, counted:
    the snapshot that follows contains them.
    """

    update_name: ClassVar[str] = "updates"
    """The stream's update messages as the venue calls them, for drop reasons."""

    @abc.abstractmethod
    def resubscribe_frames(self) -> tuple[str, ...]:
        """The unsubscribe and subscribe text frames that bring a fresh snapshot."""

    def continues(self, position: int, first: int, last: int) -> bool:
        """Whether an update moving the book from ``first`` to ``last`` follows a book at
        ``position`` (OKX: ``prevSeqId == position``); by default anything does."""
        return True

    def resync(self, reason: str) -> list[Event]:
        self.counters.resubscribes += 1
        return [Resubscribe(reason, self.resubscribe_frames())]

    def on_snapshot(
        self,
        position: int,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
        event_time_ms: int | None,
        wire: tuple[list[WireLevel], list[WireLevel]] | None = None,
    ) -> list[Event]:
        """The stream's snapshot: the book is now this, at ``position``."""
        book = self.book
        book.load(bids, asks)
        if book.wire is not None:
            book.wire.clear()
            if wire is not None:
                book.wire.apply(bids, asks, *wire)
        if self.depth is not None:
            book.truncate(self.depth)
        self.position = position
        self.counters.snapshots += 1
        return self.verified(event_time_ms)

    def on_update(
        self,
        first: int,
        last: int,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
        event_time_ms: int | None,
        wire: tuple[list[WireLevel], list[WireLevel]] | None = None,
    ) -> list[Event]:
        """One update: applied and verified when it continues the book."""
        position = self.position
        if position is None:
            self.counters.dropped += 1
            return [Dropped(1, f"{self.update_name} before the snapshot")]
        if not self.continues(position, first, last):
            self.counters.gaps += 1
            return self.integrity_failed(
                f"sequence break: book at {position}, next {self.update_name} {first}..{last}"
            )
        book = self.book
        book.apply(bids, asks)
        if book.wire is not None and wire is not None:
            book.wire.apply(bids, asks, *wire)
        if self.depth is not None:
            book.truncate(self.depth)
        self.position = last
        self.counters.applied += 1
        return self.verified(event_time_ms)
