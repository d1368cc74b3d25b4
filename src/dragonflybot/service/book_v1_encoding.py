"""The wire form of ``dragonflybot.v1.Book`` and ``VenueStatus``.

A Book is two parts, concatenated: the *body* (instrument, sequence, levels,
spread, times), the same for every stream asking the same view of one state, and
the *venues* (states and ages), which depend on when the Book is sent. protobuf
messages are a sequence of fields and a parser merges concatenated encodings, so
``body + venues`` is exactly the Book with both parts set (the tests check that
against protobuf). ``BookV1Encoder`` keeps the bodies of the newest state, so many
clients asking the same depth cost one encoding, as in ``service.summary``.

Times: the aggregator stamps ``time.monotonic_ns()``; a ``WallClock`` turns those
into UTC Timestamps at encoding (``monotonic + (time_ns - monotonic_ns)``), so the
times of one message are consistent with each other even if the wall clock steps.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final

import attrs

from dragonflybot.aggregator.state import BookState, VenueHealth, VenueState
from dragonflybot.core.fixed import to_float, to_str
from dragonflybot.core.merge import Consolidated, MergedLevel, merge
from dragonflybot.service.proto import book_v1_pb2

Book: Final[Any] = book_v1_pb2.Book  # type: ignore[attr-defined]
Level: Final[Any] = book_v1_pb2.Level  # type: ignore[attr-defined]
VenueStatus: Final[Any] = book_v1_pb2.VenueStatus  # type: ignore[attr-defined]
VenueStatusUpdate: Final[Any] = book_v1_pb2.VenueStatusUpdate  # type: ignore[attr-defined]
Instrument: Final[Any] = book_v1_pb2.Instrument  # type: ignore[attr-defined]
ListInstrumentsResponse: Final[Any] = book_v1_pb2.ListInstrumentsResponse  # type: ignore[attr-defined]
BookRequest: Final[Any] = book_v1_pb2.BookRequest  # type: ignore[attr-defined]
VenueStatusRequest: Final[Any] = book_v1_pb2.VenueStatusRequest  # type: ignore[attr-defined]
ListInstrumentsRequest: Final[Any] = book_v1_pb2.ListInstrumentsRequest  # type: ignore[attr-defined]

STATE_CODES: Final[dict[VenueState, int]] = {
    "live": book_v1_pb2.VENUE_STATE_LIVE,  # type: ignore[attr-defined]
    "syncing": book_v1_pb2.VENUE_STATE_SYNCING,  # type: ignore[attr-defined]
    "stale": book_v1_pb2.VENUE_STATE_STALE,  # type: ignore[attr-defined]
    "down": book_v1_pb2.VENUE_STATE_DOWN,  # type: ignore[attr-defined]
}
NOT_HEARD_OF: Final = "no book from this venue yet"
"""The reason given for a configured venue the aggregator has not heard of."""

BODY_CACHE_SIZE: Final = 64
"""Distinct (depth, venues) views of one state kept; more only costs re-encodings."""


@attrs.frozen(slots=True)
class WallClock:
    """Now, on both clocks; ``wall_ns`` maps an earlier monotonic reading to UTC."""

    monotonic_ns: int
    time_ns: int

    @classmethod
    def now(cls) -> WallClock:
        return cls(time.monotonic_ns(), time.time_ns())

    def wall_ns(self, monotonic_ns: int) -> int:
        return monotonic_ns + (self.time_ns - self.monotonic_ns)


def _timestamp(message: Any, unix_ns: int) -> None:
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    message.seconds = seconds
    message.nanos = nanos


def _level(level: MergedLevel) -> Any:
    venue, price, amount = level
    return Level(
        venue=venue,
        price=to_float(price),
        amount=to_float(amount),
        price_text=to_str(price),
        amount_text=to_str(amount),
    )


def book_view(state: BookState, depth: int, venues: Collection[str] | None) -> Consolidated:
    """The top ``depth`` of ``state``; merged from the named venues only if ``venues``."""
    if venues is None:
        book = state.book
        if len(book.bids) <= depth and len(book.asks) <= depth:
            return book
        return Consolidated(book.bids[:depth], book.asks[:depth], book.spread)
    return merge((v for v in state.views if v.venue in venues), depth)


def encode_body(
    instrument: str,
    state: BookState,
    depth: int,
    venues: Collection[str] | None,
    clock: WallClock,
) -> bytes:
    """Every Book field but ``venues``: the part shared by every stream of this view."""
    book = book_view(state, depth, venues)
    message = Book(
        instrument=instrument,
        sequence=state.seq,
        bids=[_level(level) for level in book.bids],
        asks=[_level(level) for level in book.asks],
    )
    if book.spread is not None:
        message.spread = to_float(book.spread)
        message.spread_text = to_str(book.spread)
    views = state.views if venues is None else [v for v in state.views if v.venue in venues]
    event_ms = [v.event_time_ms for v in views if v.event_time_ms is not None]
    if event_ms:
        _timestamp(message.exchange_time, max(event_ms) * 1_000_000)
    recv_ns = max((v.recv_ns for v in views), default=None)
    if venues is None:
        recv_ns = state.newest_recv_ns
    if recv_ns is not None:
        _timestamp(message.receive_time, clock.wall_ns(recv_ns))
    _timestamp(message.publish_time, clock.wall_ns(state.published_ns))
    data: bytes = message.SerializeToString()
    return data


def venue_healths(configured: Sequence[str], state: BookState | None) -> list[VenueHealth]:
    """Each configured venue's health (one not heard of yet is syncing), then any other."""
    known = {h.venue: h for h in state.venues} if state is not None else {}
    out = []
    for venue in configured:
        health = known.pop(venue, None)
        out.append(
            health if health is not None else VenueHealth(venue, "syncing", None, NOT_HEARD_OF)
        )
    out.extend(known[name] for name in sorted(known))
    return out


def venue_status(health: VenueHealth, clock: WallClock) -> Any:
    """``health`` as a ``VenueStatus``, its age measured at ``clock``."""
    status = VenueStatus(name=health.venue, state=STATE_CODES[health.state])
    if health.reason:
        status.reason = health.reason
    if health.last_update_ns is not None:
        status.age.FromNanoseconds(max(0, clock.monotonic_ns - health.last_update_ns))
    return status


def encode_venues(healths: Iterable[VenueHealth], clock: WallClock) -> bytes:
    """The ``Book.venues`` field alone (append to a body)."""
    data: bytes = Book(venues=[venue_status(h, clock) for h in healths]).SerializeToString()
    return data


class BookV1Encoder:
    """Encodes the Books of one instrument, keeping the bodies of its newest state.

    One per instrument, shared by its streams: bodies are keyed by (sequence, depth,
    venues) and dropped when a newer state is encoded, or past ``BODY_CACHE_SIZE``.
    """

    __slots__ = ("_bodies", "_seq", "instrument", "venues")

    def __init__(self, instrument: str, venues: Sequence[str]) -> None:
        self.instrument = instrument
        self.venues = tuple(venues)
        self._seq = -1
        self._bodies: dict[tuple[int, frozenset[str] | None], bytes] = {}

    def encode(
        self,
        state: BookState,
        depth: int,
        venues: frozenset[str] | None,
        clock: WallClock,
    ) -> bytes:
        if state.seq != self._seq:
            if state.seq < self._seq:  # an older state than cached: encode it alone
                return self._encode(state, depth, venues, clock)
            self._seq = state.seq
            self._bodies.clear()
        key = (depth, venues)
        body = self._bodies.get(key)
        if body is None:
            if len(self._bodies) >= BODY_CACHE_SIZE:
                self._bodies.clear()
            body = self._bodies[key] = encode_body(self.instrument, state, depth, venues, clock)
        return body + encode_venues(venue_healths(self.venues, state), clock)

    def _encode(
        self, state: BookState, depth: int, venues: frozenset[str] | None, clock: WallClock
    ) -> bytes:
        body = encode_body(self.instrument, state, depth, venues, clock)
        return body + encode_venues(venue_healths(self.venues, state), clock)
