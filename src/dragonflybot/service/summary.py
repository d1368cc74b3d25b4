"""The wire form of a consolidated book: built and serialized once per state.

Every client of one aggregator receives the same bytes, so the Summary is
encoded once when the state is published, never per stream: with many clients
the encoding cost stays that of one. Fixed-point values become doubles here, at
the edge, and nowhere earlier.

The bytes are assembled directly in proto3 wire format rather than through
protobuf message objects: building a ``Level`` message per level cost ~45 µs per
publication at depth 10, most of the aggregator's own time. Consecutive states
share most of their levels, so ``SummaryEncoder`` keeps each level's encoding
(bounded) and a publication costs a few dictionary look-ups and one join. The
output is byte-for-byte what ``Summary.SerializeToString()`` gives (fields in
number order, zero values omitted), which the tests check against protobuf.

Empty side: the list is empty and ``spread`` is ``0.0`` (see ``core.merge``);
no sentinel price is ever sent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

import attrs

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.core.fixed import ONE, to_float
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.service.grpcwire import frame_message
from dragonflybot.service.messages import Level, Summary

# Tags: (field number << 3) | wire type; 1 = 64-bit, 2 = length-delimited.
_SPREAD: Final = b"\x09"  # Summary.spread = 1, double
_BIDS: Final = b"\x12"  # Summary.bids = 2, Level
_ASKS: Final = b"\x1a"  # Summary.asks = 3, Level
_EXCHANGE: Final = b"\x0a"  # Level.exchange = 1, string
_PRICE: Final = b"\x11"  # Level.price = 2, double
_AMOUNT: Final = b"\x19"  # Level.amount = 3, double
_ZERO: Final = bytes(8)
_pack_double = struct.Struct("<d").pack
_pack_price_amount = struct.Struct("<BdBd").pack  # both Level doubles with their tags

LEVEL_CACHE_SIZE: Final = 4096
"""Encoded levels kept per side; far more than two consecutive books hold at any depth."""


def to_summary(book: Consolidated) -> Any:
    """The ``orderbook.Summary`` message for ``book`` (for clients and tests; the
    service sends ``SummaryEncoder`` bytes, which decode to this same message)."""
    return Summary(
        spread=to_float(book.spread) if book.spread is not None else 0.0,
        bids=[_level(lv) for lv in book.bids],
        asks=[_level(lv) for lv in book.asks],
    )


def _level(level: MergedLevel) -> Any:
    return Level(exchange=level.venue, price=to_float(level.price), amount=to_float(level.amount))


_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x80))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _double(tag: bytes, value: float) -> bytes:
    """A double field, or nothing for +0.0 (proto3 omits a value whose bits are all zero)."""
    packed = _pack_double(value)
    return b"" if packed == _ZERO else tag + packed


def _exchange(venue: str) -> bytes:
    """``Level.exchange``, or nothing for an empty name (proto3 omits empty strings)."""
    if not venue:
        return b""
    data = venue.encode()
    return _EXCHANGE + _varint(len(data)) + data


class SummaryEncoder:
    """Serializes ``Consolidated`` books to ``Summary`` bytes, remembering encoded levels.

    One per aggregator (states of one instrument share levels). Each side keeps a
    dict from level to its encoding; once it holds ``cache_size`` levels it is
    emptied (with the encoded venue names) and refilled from the books that
    follow, which bounds memory with no bookkeeping on the hot path.
    """

    __slots__ = ("_asks", "_bids", "_cache_size", "_exchanges")

    def __init__(self, cache_size: int = LEVEL_CACHE_SIZE) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be >= 1")
        self._cache_size = cache_size
        self._bids: dict[MergedLevel, bytes] = {}
        self._asks: dict[MergedLevel, bytes] = {}
        self._exchanges: dict[str, bytes] = {}

    @property
    def cached_levels(self) -> int:
        return len(self._bids) + len(self._asks)

    def encode(self, book: Consolidated) -> bytes:
        parts: list[bytes] = []
        if book.spread is not None:
            parts.append(_double(_SPREAD, to_float(book.spread)))
        self._side(book.bids, self._bids, _BIDS, parts)
        self._side(book.asks, self._asks, _ASKS, parts)
        return b"".join(parts)

    def _side(
        self,
        levels: Sequence[MergedLevel],
        cache: dict[MergedLevel, bytes],
        tag: bytes,
        parts: list[bytes],
    ) -> None:
        get = cache.get
        append = parts.append
        exchanges = self._exchanges
        for level in levels:
            data = get(level)
            if data is None:
                # One level encoded inline: a miss costs about half as much without
                # helper calls, and on a fast-moving market most levels are new.
                if len(cache) >= self._cache_size:
                    cache.clear()
                    exchanges.clear()
                venue, price, amount = level
                exchange = exchanges.get(venue)
                if exchange is None:
                    exchange = exchanges[venue] = _exchange(venue)
                price_f = price / ONE
                amount_f = amount / ONE
                if price_f and amount_f:
                    body = exchange + _pack_price_amount(0x11, price_f, 0x19, amount_f)
                else:
                    body = exchange + _double(_PRICE, price_f) + _double(_AMOUNT, amount_f)
                size = len(body)
                data = tag + (_ONE_BYTE[size] if size < 0x80 else _varint(size)) + body
                cache[level] = data
            append(data)


def encode_summary(book: Consolidated) -> bytes:
    """``book`` as ``Summary`` bytes, without a cache (one-off encodings)."""
    return SummaryEncoder().encode(book)


class PreEncoded:
    """A message already serialized: purerpc sends ``SerializeToString()``, which is free here."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


@attrs.frozen(slots=True)
class EncodedBook:
    """A published state together with its one encoding."""

    state: BookState
    summary: bytes
    framed: bytes = attrs.field(init=False)
    """``summary`` with its gRPC message prefix: framed once, written to every stream."""

    @framed.default
    def _frame(self) -> bytes:
        return frame_message(self.summary)


class SummaryPublisher:
    """The aggregator's publisher for the gRPC service: encode once, then fan out.

    Also keeps the serving status (at least one venue live) in its own fan-out,
    published only when it flips, for the health service.
    """

    def __init__(self) -> None:
        self.books: Fanout[EncodedBook] = Fanout()
        self.serving: Fanout[bool] = Fanout()
        self._encoder = SummaryEncoder()

    def publish(self, state: BookState, /) -> None:
        self.books.publish(EncodedBook(state, self._encoder.encode(state.book)))
        if self.serving.latest() is not state.serving:
            self.serving.publish(state.serving)

    def close(self) -> None:
        self.books.close()
        self.serving.close()
