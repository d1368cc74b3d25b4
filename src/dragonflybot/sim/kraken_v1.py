"""Kraken WebSocket v1 ``book`` frames (the recorded traffic), read and rewritten as v2.

The production protocol speaks v2, but the only real Kraken traffic we have is a
v1 recording (``KRAKEN.ws.50.0``). This module is for verification and replay,
never for the feed: ``parse_book_frame`` reads a v1 book frame into plain strings,
and ``V2Rewriter`` turns a recorded pair's frames into the equivalent v2 messages,
carrying over Kraken's own checksum. v1 strings are fixed-width per pair, so
formatting the v2 numbers with that width as the pair's precision gives the very
digits Kraken's v1 checksum was computed over: a v2 client fed the rewritten
messages verifies the real checksums, on real books.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import msgspec

from dragonflybot.core.fixed import parse
from dragonflybot.errors import DecodeError
from dragonflybot.sim import kraken_wire

RawLevel = tuple[str, str]
"""``(price, volume)`` exactly as sent."""

ASSET_CODES: Final = {"XBT": "BTC", "XDG": "DOGE"}
"""v1 asset codes that v2 writes differently."""


class V1Book(NamedTuple):
    """One v1 book frame: a snapshot (``as``/``bs``) or an update (``a``/``b`` and ``c``)."""

    pair: str
    depth: int
    snapshot: bool
    asks: list[RawLevel]
    bids: list[RawLevel]
    checksum: int | None
    """Kraken's CRC32 (updates only)."""


def _levels(raw: Any) -> list[RawLevel]:
    if not isinstance(raw, list):
        raise DecodeError("levels are not a list")
    out: list[RawLevel] = []
    for level in raw:
        if not (isinstance(level, list) and len(level) >= 2):
            raise DecodeError(f"bad level {level!r}")
        price, volume = level[0], level[1]
        if not (isinstance(price, str) and isinstance(volume, str)):
            raise DecodeError(f"bad level {level!r}")
        out.append((price, volume))
    return out


def parse_book_frame(text: str) -> V1Book | None:
    """A v1 book frame, or ``None`` for any other frame (events, heartbeats, other channels)."""
    msg = msgspec.json.decode(text)
    if not (isinstance(msg, list) and len(msg) >= 4):
        return None
    name, pair = msg[-2], msg[-1]
    if not (isinstance(name, str) and name.startswith("book-") and isinstance(pair, str)):
        return None
    depth = int(name.removeprefix("book-"))
    asks: list[RawLevel] = []
    bids: list[RawLevel] = []
    checksum: int | None = None
    snapshot = False
    for part in msg[1:-2]:
        if not isinstance(part, dict):
            raise DecodeError("book payload is not an object")
        if "as" in part or "bs" in part:
            snapshot = True
        asks += _levels(part.get("as", part.get("a", [])))
        bids += _levels(part.get("bs", part.get("b", [])))
        if "c" in part:
            checksum = int(part["c"])
    return V1Book(pair, depth, snapshot, asks, bids, checksum)


def read_recording(lines: Iterator[str]) -> Iterator[tuple[float, str]]:
    """``(receive time, frame text)`` of the frames received in a ``.ws.`` recording."""
    first = True
    for line in lines:
        if first:
            first = False  # the connect URL
            continue
        if not line.strip():
            continue
        head, _, body = line.partition(": ")
        if " <- " in head:  # a frame we sent
            continue
        yield float(head), body


def v2_symbol(pair: str) -> str:
    """``XBT/CHF`` -> ``BTC/CHF``."""
    return "/".join(ASSET_CODES.get(asset, asset) for asset in pair.split("/"))


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


class V2Rewriter:
    """One recorded pair's v1 frames rewritten as v2 ``book`` messages.

    The precisions are the widths of the pair's v1 strings (the first snapshot's;
    a later string of another width is an error, since the checksum digits would
    then differ). A v1 snapshot carries no checksum; its v2 form gets the one
    computed over its best levels.
    """

    def __init__(self, pair: str) -> None:
        self.pair = pair
        self.symbol = v2_symbol(pair)
        self.price_precision: int | None = None
        self.qty_precision: int | None = None

    def _check_width(self, levels: list[RawLevel]) -> None:
        for price, qty in levels:
            if decimals(price) != self.price_precision or decimals(qty) != self.qty_precision:
                raise DecodeError(f"{self.pair}: level {price} {qty} is not of the pair's width")

    def rewrite(self, book: V1Book, time_ms: int | None = None) -> str:
        if book.snapshot:
            first = (book.asks or book.bids)[0]
            self.price_precision = decimals(first[0])
            self.qty_precision = decimals(first[1])
        if self.price_precision is None or self.qty_precision is None:
            raise DecodeError(f"{self.pair}: an update before the snapshot")
        self._check_width(book.asks)
        self._check_width(book.bids)
        bids = [(parse(p), parse(q)) for p, q in book.bids]
        asks = [(parse(p), parse(q)) for p, q in book.asks]
        if book.snapshot:
            checksum = kraken_wire.checksum_of(
                sorted(bids, reverse=True), sorted(asks), self.price_precision, self.qty_precision
            )
            return kraken_wire.book_message("snapshot", self.symbol, bids, asks, checksum, time_ms)
        assert book.checksum is not None
        return kraken_wire.book_message("update", self.symbol, bids, asks, book.checksum, time_ms)
