"""Venue order books: top-N snapshots and full-depth books maintained from diffs.

A level is a ``(price, amount)`` tuple of fixed-point ints (``core.fixed``). Both
book kinds expose the same read API, ``top_bids(n)`` / ``top_asks(n)``, best first.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import NamedTuple

from dragonflybot.core.fixed import Fixed


class Level(NamedTuple):
    """One price level. A NamedTuple so it compares and hashes as a plain tuple."""

    price: Fixed
    amount: Fixed


Side = tuple[Level, ...]
"""An immutable, best-first run of levels."""

PriceAmount = tuple[Fixed, Fixed]
"""A parsed ``(price, amount)`` change, not yet a ``Level``.

Diffs carry plain tuples: a ``Level`` is built only for a level the book keeps,
and a diff is mostly removals and amount changes of levels it already holds.
"""

_new_level = tuple.__new__
"""``Level(price, amount)`` without the generated ``__new__``'s Python frame (cheaper)."""


class TopBook:
    """A venue's top N, replaced whole by each message (Binance depth20, Bitstamp order_book).

    The venue already sends each side best first; we keep its order but validate
    it, because a merge over unsorted input would be silently wrong.
    """

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: Side = ()
        self.asks: Side = ()

    def replace(self, bids: Sequence[PriceAmount], asks: Sequence[PriceAmount]) -> None:
        """Install a new snapshot; zero-amount levels are dropped, order is checked.

        Raises ``ValueError`` if a side is not strictly ordered best first; the book
        is left unchanged in that case.
        """
        new_bids = tuple(_new_level(Level, lv) for lv in bids if lv[1])
        new_asks = tuple(_new_level(Level, lv) for lv in asks if lv[1])
        for i in range(1, len(new_bids)):
            if new_bids[i].price >= new_bids[i - 1].price:
                raise ValueError("bids are not strictly descending")
        for i in range(1, len(new_asks)):
            if new_asks[i].price <= new_asks[i - 1].price:
                raise ValueError("asks are not strictly ascending")
        self.bids = new_bids
        self.asks = new_asks

    def clear(self) -> None:
        self.bids = ()
        self.asks = ()

    def top_bids(self, n: int) -> Side:
        return self.bids[:n]

    def top_asks(self, n: int) -> Side:
        return self.asks[:n]

    def top(self, n: int) -> tuple[Side, Side]:
        """``(top_bids(n), top_asks(n))`` in one call."""
        return self.bids[:n], self.asks[:n]


class _SortedSide:
    """One side of a full-depth book: levels by sort key, the keys kept sorted.

    The sort key is the price for asks and minus the price for bids, so "best
    first" is ascending on both sides. Reading the top N is a slice of the sorted
    keys, never a sort. Inserting a new price is a ``bisect.insort`` (an O(n)
    memmove in C, cheap for the few thousand levels a venue publishes); most
    updates change the amount of a known price and touch only the dict.

    Levels are stored as ``Level`` objects, built once when set rather than on
    every read, and the last top-N read is cached: a listener reads the top after
    every diff, and most diffs change levels deeper than N. A change invalidates
    the cache only if its key is not behind the last cached level (``_edge``), or
    if the cached read held the whole side.
    """

    __slots__ = ("_edge", "_keys", "_levels", "_negate", "_top", "_top_n")

    def __init__(self, *, descending: bool) -> None:
        self._negate = descending
        self._levels: dict[Fixed, Level] = {}
        self._keys: list[Fixed] = []
        self._top: Side | None = None
        self._top_n = 0
        self._edge: Fixed | None = None
        """Sort key of the last cached level; None when the cache holds the whole side."""

    def __len__(self) -> int:
        return len(self._levels)

    def put(self, level: PriceAmount) -> None:
        self.update((level,))

    def update(self, changes: Iterable[PriceAmount]) -> None:
        """Apply absolute amounts; the loop is inlined because it runs for every level of
        every diff."""
        levels = self._levels
        keys = self._keys
        negate = self._negate
        cached = self._top is not None
        edge = self._edge
        for level in changes:
            price, amount = level
            key = -price if negate else price
            old = levels.get(key)
            if amount:
                if old is None:
                    insort(keys, key)
                elif old[1] == amount:
                    continue  # a repeated quantity changes nothing, not even the cache
                levels[key] = level if level.__class__ is Level else _new_level(Level, level)
            elif old is not None:
                del levels[key]
                del keys[bisect_left(keys, key)]
            else:
                continue  # removing a level we do not hold is normal (venues say so)
            if cached and (edge is None or key <= edge):
                cached = False
                self._top = None

    def build(self, levels: Iterable[PriceAmount]) -> dict[Fixed, Level]:
        """A side's table from a snapshot; later levels win, amount zero removes.

        Built apart from the live side so that a snapshot that fails half way
        (a bad value in a lazy iterable) leaves the book as it was.
        """
        negate = self._negate
        table: dict[Fixed, Level] = {}
        for level in levels:
            price, amount = level
            key = -price if negate else price
            if amount:
                table[key] = level if level.__class__ is Level else _new_level(Level, level)
            else:
                table.pop(key, None)
        return table

    def install(self, table: dict[Fixed, Level]) -> None:
        """Make ``table`` the side.

        One sort of the keys (linear for a snapshot already in order) instead of
        an insort per level.
        """
        self._levels = table
        self._keys = sorted(table)
        self._top = None

    def top(self, n: int) -> Side:
        cached = self._top
        if cached is not None and 0 <= n <= self._top_n:
            return cached if n == self._top_n else cached[:n]
        keys = self._keys[:n]
        top: Side
        if len(keys) > 1:
            # One C call building the tuple; it returns a bare item for a single key.
            top = itemgetter(*keys)(self._levels)
        else:
            top = tuple(map(self._levels.__getitem__, keys))
        if n > 0:
            self._top = top
            self._top_n = n
            self._edge = keys[-1] if len(keys) == n else None
        return top

    def clear(self) -> None:
        self._levels.clear()
        self._keys.clear()
        self._top = None

    def best_key(self) -> Fixed | None:
        """Sort key of the best level (minus the price on the bid side)."""
        keys = self._keys
        return keys[0] if keys else None

    def truncate(self, depth: int) -> list[Fixed]:
        """Keep the best ``depth`` levels; returns the prices removed."""
        keys = self._keys
        if len(keys) <= depth:
            return []
        levels = self._levels
        removed = [levels.pop(key).price for key in keys[depth:]]
        del keys[depth:]
        if self._top is not None and (self._edge is None or self._top_n > depth):
            self._top = None
        return removed

    def items(self) -> dict[Fixed, Fixed]:
        return {price: amount for price, amount in self._levels.values()}


WireLevel = tuple[str, str]
"""A level exactly as the venue wrote it: ``(price text, amount text)``."""


class WireStrings:
    """The venue's own strings of each level a book holds, by price, for checksums.

    Kept beside the book, not in it, so a venue without a string checksum (Binance,
    Bitstamp) pays nothing on its per-frame path; a venue whose checksum is computed
    over the exact wire strings (OKX, Kraken v1) keeps one of these and updates it
    with the same levels it applies to the book.
    """

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Fixed, WireLevel] = {}
        self.asks: dict[Fixed, WireLevel] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    @staticmethod
    def _update(
        table: dict[Fixed, WireLevel], parsed: Sequence[PriceAmount], wire: Sequence[WireLevel]
    ) -> None:
        for (price, amount), text in zip(parsed, wire, strict=True):
            if amount:
                table[price] = text
            else:
                table.pop(price, None)

    def apply(
        self,
        bids: Sequence[PriceAmount],
        asks: Sequence[PriceAmount],
        wire_bids: Sequence[WireLevel],
        wire_asks: Sequence[WireLevel],
    ) -> None:
        """Record the strings of one applied message (same levels, same order)."""
        self._update(self.bids, bids, wire_bids)
        self._update(self.asks, asks, wire_asks)

    def side(self, levels: Side, table: dict[Fixed, WireLevel]) -> list[WireLevel]:
        """The wire strings of ``levels`` (a book's top), best first."""
        return [table[level.price] for level in levels]


class FullDepthBook:
    """A full-depth book kept from a snapshot plus absolute-quantity diffs.

    Amount zero removes a level; removing an unknown level is a no-op. The
    sync rules (which diffs to apply) live in each venue's protocol module; this
    class only holds state. ``wire`` (off unless asked for) keeps the venue's
    strings per level for a checksum over them; ``truncate`` keeps the book to a
    subscribed depth for venues that send no delete for a level falling out of it.
    """

    __slots__ = ("_asks", "_bids", "wire")

    def __init__(self, *, keep_wire: bool = False) -> None:
        self._bids = _SortedSide(descending=True)
        self._asks = _SortedSide(descending=False)
        self.wire: WireStrings | None = WireStrings() if keep_wire else None

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        if self.wire is not None:
            self.wire.clear()

    def crossed(self) -> bool:
        """The best bid is at or above the best ask (crossed or locked): for one venue's
        own book, proof that it is wrong."""
        # Read after every applied diff: the keys directly, no method calls.
        bids = self._bids._keys
        asks = self._asks._keys
        return bool(bids) and bool(asks) and -bids[0] >= asks[0]

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (and their wire strings)."""
        removed_bids = self._bids.truncate(depth)
        removed_asks = self._asks.truncate(depth)
        wire = self.wire
        if wire is not None:
            for price in removed_bids:
                wire.bids.pop(price, None)
            for price in removed_asks:
                wire.asks.pop(price, None)

    def load(self, bids: Iterable[PriceAmount], asks: Iterable[PriceAmount]) -> None:
        """Replace the whole book with a snapshot (same result as clear + apply).

        All or nothing: if reading either side raises, the book is unchanged.
        """
        bid_table = self._bids.build(bids)
        ask_table = self._asks.build(asks)
        self._bids.install(bid_table)
        self._asks.install(ask_table)

    def apply(self, bids: Iterable[PriceAmount], asks: Iterable[PriceAmount]) -> bool:
        """Apply one diff message; every level of the message lands before any read.

        Returns ``crossed()`` after it: the sync checks every applied message, and
        the answer costs least here, inside a call the message makes anyway.
        """
        bid_side = self._bids
        ask_side = self._asks
        bid_side.update(bids)
        ask_side.update(asks)
        bid_keys = bid_side._keys
        ask_keys = ask_side._keys
        if bid_keys and ask_keys:
            return -bid_keys[0] >= ask_keys[0]
        return False

    def set_bid(self, price: Fixed, amount: Fixed) -> None:
        self._bids.put(Level(price, amount))

    def set_ask(self, price: Fixed, amount: Fixed) -> None:
        self._asks.put(Level(price, amount))

    def top_bids(self, n: int) -> Side:
        return self._bids.top(n)

    def top_asks(self, n: int) -> Side:
        return self._asks.top(n)

    def top(self, n: int) -> tuple[Side, Side]:
        """``(top_bids(n), top_asks(n))``: a side's tuple is the same object as at the
        previous read while no change reached its top ``n``."""
        # The cache checks of ``_SortedSide.top`` inlined: read after every diff.
        bids = self._bids
        top_bids = bids._top
        if top_bids is None or bids._top_n != n:
            top_bids = bids.top(n)
        asks = self._asks
        top_asks = asks._top
        if top_asks is None or asks._top_n != n:
            top_asks = asks.top(n)
        return top_bids, top_asks

    @property
    def depth(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bids), len(self._asks)

    def bids_dict(self) -> dict[Fixed, Fixed]:
        """A copy of the bid side, for checks and tests."""
        return self._bids.items()

    def asks_dict(self) -> dict[Fixed, Fixed]:
        return self._asks.items()
