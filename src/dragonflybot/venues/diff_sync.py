"""The buffer, snapshot, replay outline of a REST-snapshot book sync, written once.

A ``BookSync`` (``venues.book_sync``) whose snapshot comes over REST. Binance and
Bitstamp sync the same way: buffer the stream, fetch a REST snapshot, fetch
again while the snapshot is older than the oldest buffered diff (it may miss what
was sent before the subscription took effect), drop the buffered diffs it already
holds, then apply the rest in order. What differs is each venue's rule for applying
one live diff (Binance's update ids reveal gaps, Bitstamp's microtimestamps cannot)
and its snapshot body; a subclass in the venue's module holds exactly those. Every
applied diff goes through the shared integrity check (``BookSync.verified``); a
failure refetches the snapshot.
"""

from __future__ import annotations

import abc
from collections import deque
from typing import ClassVar, Final, NamedTuple

import msgspec

from dragonflybot.core.book import PriceAmount
from dragonflybot.venues.base import (
    BAD_INPUT,
    BookChanged,
    BookReset,
    Dropped,
    Event,
    Ignored,
    Skipped,
)
from dragonflybot.venues.book_sync import BookSync
from dragonflybot.venues.requests import SnapshotRequests


class Diff(msgspec.Struct):
    """A validated diff, levels already parsed: safe to buffer and apply later.

    It moves the book from position ``first`` to ``last`` (update ids; a venue
    without a sequence uses its timestamp for both), which is all the outline
    needs to know to drop or keep it against a snapshot. Built only for a diff
    that must wait (unsynced, or re-buffered after a gap): a synced book applies
    a live diff straight from its fields.
    """

    first: int
    last: int
    event_time_ms: int | None
    bids: list[PriceAmount]
    asks: list[PriceAmount]


class SnapshotBody(NamedTuple):
    """A validated REST snapshot: the book at ``position``."""

    position: int
    bids: list[PriceAmount]
    asks: list[PriceAmount]
    event_time_ms: int | None


class DiffSync(BookSync):
    """A book synced from a REST snapshot plus the buffered stream of diffs."""

    MAX_BUFFER: Final = 10_000
    """Diffs kept while unsynced (about 17 minutes at 100 ms): bounds memory when REST is down."""

    snapshot_name: ClassVar[str]
    """The snapshot as the venue calls it, for skip reasons."""
    diff_name: ClassVar[str]
    """The stream's messages as the venue calls them, for drop reasons."""

    def __init__(self, requests: SnapshotRequests) -> None:
        super().__init__()
        self.requests = requests
        self.buffer: deque[Diff] = deque()

    @abc.abstractmethod
    def apply_live(
        self,
        first: int,
        last: int,
        event_time_ms: int | None,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
    ) -> list[Event]:
        """Apply a diff to a synced book by the venue's rule, or drop it, or reset.

        Returns ``self.verified(...)`` when applied (``BookChanged``, or the resync
        when the integrity check fails), one ``Dropped`` when the book was already
        newer, or ``BookReset`` first when a gap discarded the book (the failing diff
        re-buffered and a new snapshot requested). Takes the diff's
        fields, not a ``Diff``: a live diff is applied as it arrives, and only one
        that must wait is built into a ``Diff``.
        """

    @abc.abstractmethod
    def parse_snapshot(self, body: bytes) -> SnapshotBody:
        """Decode and validate a REST body; raises one of ``BAD_INPUT`` on anything wrong."""

    def install(self, snapshot: SnapshotBody) -> None:
        """Load the book from ``snapshot``: it is now synced, at the snapshot's position."""
        self.book.load(snapshot.bids, snapshot.asks)
        self.counters.snapshots += 1
        self.position = snapshot.position

    def reset(self) -> None:
        super().reset()
        self.buffer.clear()
        self.requests.cancel()

    def resync(self, reason: str) -> list[Event]:
        return [self.requests.request()]

    def on_diff(
        self,
        first: int,
        last: int,
        event_time_ms: int | None,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
    ) -> list[Event]:
        """A validated diff just received: applied when synced, else buffered."""
        if self.position is not None:
            return self.apply_live(first, last, event_time_ms, bids, asks)
        diff = Diff(first, last, event_time_ms, bids, asks)
        events: list[Event] = []
        if len(self.buffer) >= self.MAX_BUFFER:
            events.append(Dropped(len(self.buffer), "buffer overflow while waiting for a snapshot"))
            self.counters.dropped += len(self.buffer)
            self.buffer.clear()
            self.requests.cancel()
        self.buffer.append(diff)
        if not self.requests.in_flight:
            events.append(self.requests.request())
        return events

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        return self.on_snapshot(token, body)

    def on_snapshot(self, token: int, body: bytes) -> list[Event]:
        if not self.requests.answer(token):
            return [Ignored("response to a snapshot request given up on")]
        try:
            snapshot = self.parse_snapshot(body)
        except BAD_INPUT as exc:
            self.counters.skipped += 1
            self.counters.refetches += 1
            return [
                Skipped(f"malformed {self.snapshot_name} snapshot: {exc}"),
                self.requests.request(),
            ]
        position = snapshot.position
        if self.buffer and position < self.buffer[0].first:
            self.counters.refetches += 1
            return [self.requests.request()]
        events: list[Event] = []
        stale = 0
        while self.buffer and self.buffer[0].last <= position:
            self.buffer.popleft()
            stale += 1
        if stale:
            self.counters.dropped += stale
            reason = f"buffered {self.diff_name} not newer than snapshot {position}"
            events.append(Dropped(stale, reason))
        self.install(snapshot)
        self.requests.done()
        event_time = snapshot.event_time_ms
        pending = list(self.buffer)
        self.buffer.clear()
        for i, diff in enumerate(pending):
            applied = self.apply_live(
                diff.first, diff.last, diff.event_time_ms, diff.bids, diff.asks
            )
            first = applied[0]
            if isinstance(first, BookReset):
                # The gap re-buffered the failing diff; the ones after it follow it.
                self.buffer.extend(pending[i + 1 :])
                events.extend(applied)
                return events
            if isinstance(first, BookChanged):
                event_time = first.event_time_ms
            else:
                events.extend(applied)
        events.extend(self.verified(event_time))
        return events
