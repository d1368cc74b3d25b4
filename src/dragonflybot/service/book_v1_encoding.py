"""The wire form of ``dragonflybot.v1.Book`` (by hand) and ``VenueStatus``.

A Book is two parts, concatenated: the *body* (fields 1-9: instrument, sequence,
levels, spread, times), the same for every stream asking the same view of one
state, and the *venues* (field 10: states and ages), which depend on when the
Book is sent. Fields are encoded in number order, so ``body + venues`` is byte for
byte protobuf's serialization of the whole Book (a hypothesis test compares them).
``BookV1Encoder`` keeps the bodies of the newest state and each side's encoded
levels, so many clients cost one encoding per state and view, as in
``service.summary``, whose reasons for encoding by hand (protobuf message objects
cost several times more per level) apply here too.

Times: the aggregator stamps ``time.monotonic_ns()``; a ``WallClock`` turns those
into UTC Timestamps at encoding (``monotonic + (time_ns - monotonic_ns)``), so the
times of one message are consistent with each other even if the wall clock steps.
"""

from __future__ import annotations

import struct
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


# --- proto3 wire format, by hand (see the module docstring of ``service.summary``) -------
# Tags: (field number << 3) | wire type; 0 = varint, 1 = 64-bit, 2 = length-delimited.
_B_INSTRUMENT: Final = 0x0A
_B_SEQUENCE: Final = 0x10
_B_BIDS: Final = 0x1A
_B_ASKS: Final = 0x22
_B_SPREAD: Final = 0x29
_B_SPREAD_TEXT: Final = 0x32
_B_EXCHANGE_TIME: Final = 0x3A
_B_RECEIVE_TIME: Final = 0x42
_B_PUBLISH_TIME: Final = 0x4A
_B_VENUES: Final = 0x52
_L_VENUE: Final = 0x0A
_L_PRICE: Final = 0x11
_L_AMOUNT: Final = 0x19
_L_PRICE_TEXT: Final = 0x22
_L_AMOUNT_TEXT: Final = 0x2A
_V_NAME: Final = 0x0A
_V_STATE: Final = 0x10
_V_AGE: Final = 0x1A
_V_REASON: Final = 0x22
_T_SECONDS: Final = 0x08  # Timestamp and Duration alike
_T_NANOS: Final = 0x10
_ZERO: Final = bytes(8)
_pack_double = struct.Struct("<d").pack

LEVEL_CACHE_SIZE: Final = 4096
"""Encoded levels kept per side; far more than two consecutive books hold at any depth."""


_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))


def _varint(value: int) -> bytes:
    """Base-128 varint; a negative (int64) value as its 64-bit two's complement."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited field (always sent: used for present sub-messages)."""
    size = len(data)
    return _ONE_BYTE[tag] + (_ONE_BYTE[size] if size < 0x80 else _varint(size)) + data


def _string(tag: int, text: str) -> bytes:
    return _field(tag, text.encode()) if text else b""


def _double(tag: int, value: float) -> bytes:
    """A double, or nothing for +0.0 (proto3 omits a value whose bits are all zero)."""
    packed = _pack_double(value)
    return b"" if packed == _ZERO else _ONE_BYTE[tag] + packed


def _number(tag: int, value: int) -> bytes:
    return _ONE_BYTE[tag] + _varint(value) if value else b""


def _time(tag: int, ns: int) -> bytes:
    """A ``Timestamp`` (ns since the epoch) or ``Duration`` (ns): seconds and nanos >= 0."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return _field(tag, _number(_T_SECONDS, seconds) + _number(_T_NANOS, nanos))


def encode_level(tag: int, level: MergedLevel) -> bytes:
    """One element of ``Book.bids`` (``_B_BIDS``) or ``Book.asks``: tag, length, ``Level``."""
    venue, price, amount = level
    body = (
        _string(_L_VENUE, venue)
        + _double(_L_PRICE, to_float(price))
        + _double(_L_AMOUNT, to_float(amount))
        + _string(_L_PRICE_TEXT, to_str(price))
        + _string(_L_AMOUNT_TEXT, to_str(amount))
    )
    return _field(tag, body)


class _LevelCache:
    """Encoded levels of one side; emptied when full (consecutive books share most levels)."""

    __slots__ = ("_encoded", "_tag")

    def __init__(self, tag: int) -> None:
        self._tag = tag
        self._encoded: dict[MergedLevel, bytes] = {}

    def encode(self, levels: Sequence[MergedLevel]) -> list[bytes]:
        encoded = self._encoded
        out = []
        for level in levels:
            data = encoded.get(level)
            if data is None:
                if len(encoded) >= LEVEL_CACHE_SIZE:
                    encoded.clear()
                data = encoded[level] = encode_level(self._tag, level)
            out.append(data)
        return out


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
    levels: tuple[_LevelCache, _LevelCache] | None = None,
) -> bytes:
    """Every Book field but ``venues`` (1-9, in field order): shared by the streams of a view.

    ``levels``: the (bids, asks) caches of the instrument's encoder, if any.
    """
    book = book_view(state, depth, venues)
    bids, asks = levels if levels is not None else (_LevelCache(_B_BIDS), _LevelCache(_B_ASKS))
    parts = [_string(_B_INSTRUMENT, instrument), _number(_B_SEQUENCE, state.seq)]
    parts += bids.encode(book.bids)
    parts += asks.encode(book.asks)
    if book.spread is not None:
        parts.append(_double(_B_SPREAD, to_float(book.spread)))
        parts.append(_string(_B_SPREAD_TEXT, to_str(book.spread)))
    views = state.views if venues is None else [v for v in state.views if v.venue in venues]
    event_ms = [v.event_time_ms for v in views if v.event_time_ms is not None]
    if event_ms:
        parts.append(_time(_B_EXCHANGE_TIME, max(event_ms) * 1_000_000))
    recv_ns = max((v.recv_ns for v in views), default=None)
    if venues is None:
        recv_ns = state.newest_recv_ns
    if recv_ns is not None:
        parts.append(_time(_B_RECEIVE_TIME, clock.wall_ns(recv_ns)))
    parts.append(_time(_B_PUBLISH_TIME, clock.wall_ns(state.published_ns)))
    return b"".join(parts)


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


def encode_venue(health: VenueHealth, clock: WallClock) -> bytes:
    """One element of ``Book.venues``: tag, length, ``VenueStatus`` aged at ``clock``."""
    body = _string(_V_NAME, health.venue) + _number(_V_STATE, STATE_CODES[health.state])
    if health.last_update_ns is not None:
        body += _time(_V_AGE, max(0, clock.monotonic_ns - health.last_update_ns))
    if health.reason:
        body += _string(_V_REASON, health.reason)
    return _field(_B_VENUES, body)


def encode_venues(healths: Iterable[VenueHealth], clock: WallClock) -> bytes:
    """The ``Book.venues`` field alone (field 10, the last: append it to a body)."""
    return b"".join([encode_venue(health, clock) for health in healths])


class BookV1Encoder:
    """Encodes the Books of one instrument, keeping what its streams share.

    One per instrument, shared by its streams: the bodies and venue list of the
    newest state (keyed by depth and venue filter, dropped when a newer state is
    encoded or past ``BODY_CACHE_SIZE``) and each side's encoded levels.
    """

    __slots__ = ("_bodies", "_healths", "_levels", "_seq", "instrument", "venues")

    def __init__(self, instrument: str, venues: Sequence[str]) -> None:
        self.instrument = instrument
        self.venues = tuple(venues)
        self._seq = -1
        self._bodies: dict[tuple[int, frozenset[str] | None], bytes] = {}
        self._healths: list[VenueHealth] = []
        self._levels = (_LevelCache(_B_BIDS), _LevelCache(_B_ASKS))

    def encode(
        self,
        state: BookState,
        depth: int,
        venues: frozenset[str] | None,
        clock: WallClock,
    ) -> bytes:
        if state.seq != self._seq:
            if state.seq < self._seq:  # an older state than cached: encode it alone
                old = encode_body(self.instrument, state, depth, venues, clock, self._levels)
                return old + encode_venues(venue_healths(self.venues, state), clock)
            self._seq = state.seq
            self._bodies.clear()
            self._healths = venue_healths(self.venues, state)
        key = (depth, venues)
        body = self._bodies.get(key)
        if body is None:
            if len(self._bodies) >= BODY_CACHE_SIZE:
                self._bodies.clear()
            body = encode_body(self.instrument, state, depth, venues, clock, self._levels)
            self._bodies[key] = body
        return body + encode_venues(self._healths, clock)
