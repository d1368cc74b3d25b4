"""The part of a venue protocol that is the same for every venue: one book, two modes.

A protocol serves its instrument either from whole top-N messages (``top`` mode,
kept in a ``TopBook``) or from the full-depth book (``depth`` mode, kept by the
venue's ``BookSync``: a ``DiffSync`` synced to a REST snapshot, or a ``StreamSync``
whose snapshot comes on the stream). The subscription state, which book the
top-N reads come from and when it may be published follow from that choice alone,
so they live here; a venue module adds its wire schema, its subscribe and ack
messages and its sync rule.
"""

from __future__ import annotations

import abc
from typing import Generic, TypeVar

import msgspec

from dragonflybot.config import Mode
from dragonflybot.core.book import FullDepthBook, PriceAmount, Side, TopBook
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Event,
    LevelParser,
    SendText,
    Skipped,
    Subscribed,
    VenueProtocol,
)
from dragonflybot.venues.book_sync import CROSSED, BookSync
from dragonflybot.venues.diff_sync import DiffSync
from dragonflybot.venues.top_levels import TopSide

SyncT = TypeVar("SyncT", bound=BookSync)


class BookProtocol(VenueProtocol, Generic[SyncT]):
    """A ``VenueProtocol`` keeping one book, in the mode fixed at construction."""

    def __init__(
        self,
        venue: str,
        mode: Mode,
        ws_url: str,
        rest_url: str,
        streams: tuple[str, ...],
        sync: SyncT,
    ) -> None:
        self.venue = venue
        self.mode = mode
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.streams = streams
        self._diff = sync
        self.counters = sync.counters
        self._top = TopBook()
        self._have_top = False
        self._subscribed = False
        self._levels = sync.levels
        self._top_levels = LevelParser(remember_amounts=True)
        """Top mode's parser: a snapshot repeats most amounts of the one before it."""
        self._top_bid_side = TopSide(self._top_levels)
        self._top_ask_side = TopSide(self._top_levels)
        self._top_depth: int | None = None
        """Levels per side a top-N snapshot is parsed to (``None``: all; ``read_depth``)."""
        # The book the top-N reads come from never changes: both are cleared in place.
        self._book: TopBook | FullDepthBook = self._top if mode == "top" else sync.book

    @abc.abstractmethod
    def _subscribe_text(self) -> str:
        """The subscribe request to send on a fresh connection."""

    # --- state --------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def synced(self) -> bool:
        return self._subscribed and (self.mode == "top" or self._diff.position is not None)

    @property
    def has_book(self) -> bool:
        if self.mode == "top":
            return self._have_top
        return self._diff.position is not None

    @property
    def uses_rest(self) -> bool:
        return self.mode == "depth" and isinstance(self._diff, DiffSync)

    @property
    def full_book(self) -> FullDepthBook:
        """Diff mode: the whole book (for checks; publish through ``top_*``)."""
        return self._diff.book

    def read_depth(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"read depth must be >= 1, got {n}")
        self._top_depth = n

    def top_bids(self, n: int) -> Side:
        return self._book.top_bids(n)

    def top_asks(self, n: int) -> Side:
        return self._book.top_asks(n)

    def top(self, n: int) -> tuple[Side, Side]:
        return self._book.top(n)

    # --- driving ------------------------------------------------------------------------

    def connection_made(self) -> list[Event]:
        self._subscribed = False
        self._top.clear()
        self._have_top = False
        self._diff.connection_made()
        return [SendText(self._subscribe_text())]

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        if self.mode == "top":
            return super().snapshot_received(token, body)
        return self._diff.snapshot_received(token, body)

    # --- for the venue modules ----------------------------------------------------------

    def _skip(self, reason: str) -> list[Event]:
        self.counters.skipped += 1
        return [Skipped(reason)]

    def _skip_book(self, reason: str, *, snapshot: bool = False) -> list[Event]:
        """A message recognisably for our book but malformed: skipped, and resynced when
        that leaves a held book behind the venue, or the awaited snapshot lost (a held
        book is never silently behind, and a stream sends no snapshot unasked)."""
        self.counters.skipped += 1
        events: list[Event] = [Skipped(reason)]
        if self._diff.position is not None or snapshot:
            events += self._diff.integrity_failed(f"malformed book message: {reason}")
        return events

    def _acknowledged(self) -> list[Event]:
        """Every stream was acknowledged on this connection."""
        self._subscribed = True
        return [Subscribed(self.streams)]

    def _top_sides(self, bids: msgspec.Raw, asks: msgspec.Raw) -> tuple[Side, Side]:
        """A top-N snapshot's sides from their raw JSON, parsed only as deep as read.

        The first ``read_depth`` nonzero levels of each side (all without one), decoded
        and validated exactly as the full parser does; see ``venues.top_levels`` for
        what is and is not checked beyond them. Raises what the full parser raises. The
        order is checked by ``_replace_top_sides``.
        """
        n = self._top_depth
        return self._top_bid_side.read(bids, n), self._top_ask_side.read(asks, n)

    def _replace_top_sides(self, bids: Side, asks: Side, event_time_ms: int | None) -> Event:
        """``_replace_top`` for the sides ``_top_sides`` read (``Level`` tuples)."""
        self._top.replace_sides(bids, asks)
        return self._top_installed(event_time_ms)

    def _replace_top(
        self, bids: list[PriceAmount], asks: list[PriceAmount], event_time_ms: int | None
    ) -> Event:
        """Snapshot mode: install a whole top N.

        Raises ``ValueError`` (nothing replaced) when a side is out of order, so a
        caller validating a message calls it last, inside its ``BAD_INPUT`` guard.
        """
        self._top.replace(bids, asks)
        return self._top_installed(event_time_ms)

    def _top_installed(self, event_time_ms: int | None) -> Event:
        """The top N just installed is published, or refused when crossed."""
        top = self._top
        if top.bids and top.asks and top.bids[0].price >= top.asks[0].price:
            # The venue's own top crossed or locked: wrong, never published. The
            # venue is out of the consolidated book until a sound top arrives.
            top.clear()
            self._have_top = False
            self.counters.crossed += 1
            self.counters.integrity_failures += 1
            return BookReset(CROSSED, gap=False)
        self._have_top = True
        self.counters.applied += 1
        return BookChanged(event_time_ms)
