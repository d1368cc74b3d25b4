"""Venue order books: top-N snapshots and full-depth books maintained from diffs.

A level is a ``(price, amount)`` tuple of fixed-point ints (``core.fixed``). Both
book kinds expose the same read API, ``top_bids(n)`` / ``top_asks(n)``, best first.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from operator import gt, itemgetter
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

new_level = tuple.__new__
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
        new_bids = tuple(new_level(Level, lv) for lv in bids if lv[1])
        new_asks = tuple(new_level(Level, lv) for lv in asks if lv[1])
        for i in range(1, len(new_bids)):
            if new_bids[i].price >= new_bids[i - 1].price:
                raise ValueError("bids are not strictly descending")
        for i in range(1, len(new_asks)):
            if new_asks[i].price <= new_asks[i - 1].price:
                raise ValueError("asks are not strictly ascending")
        self.bids = new_bids
        self.asks = new_asks

    def replace_sides(self, bids: Side, asks: Side) -> None:
        """Install a new snapshot of ``Level`` sides (zero amounts already dropped).

        ``replace`` for a reader that builds the sides itself (``venues.top_levels``):
        the order of a side is checked unless it is the very side the book holds (a
        reader hands back the same tuple for an unchanged head, and the book holds only
        checked sides). Raises ``ValueError`` as ``replace`` does, the book unchanged.
        """
        if bids is not self.bids and not _descending(bids):
            raise ValueError("bids are not strictly descending")
        if asks is not self.asks and not _descending(asks[::-1]):
            raise ValueError("asks are not strictly ascending")
        self.bids = bids
        self.asks = asks

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


def _descending(side: Side) -> bool:
    """Prices strictly descending: one C pass (``map(gt, ...)``), no Python loop."""
    prices = list(map(_price, side))
    return all(map(gt, prices, prices[1:]))


_price = itemgetter(0)


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
                levels[key] = level if level.__class__ is Level else new_level(Level, level)
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
                table[key] = level if level.__class__ is Level else new_level(Level, level)
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


WireLevel = tuple[Fixed, Fixed, str]
"""A parsed change with its checksum text: ``(price, absolute amount, text)``.

The text is whatever the venue's checksum concatenates for that level, built once
when the level is parsed (OKX ``price:size`` in the exact strings received, Kraken
the digits of both values at the pair's precision), so a checksum after a message
costs no formatting, one read of the best texts and one CRC. A plain tuple: a
venue builds one per level of every message.
"""


class _WireSide(_SortedSide):
    """A side that also keeps each level's checksum text, by sort key.

    Only books of venues with a string checksum use it, so ``_SortedSide`` (the
    Binance and Bitstamp hot path) pays nothing for it. The last read of the best
    texts is cached with the same edge rule as the top: a change behind the cached
    edge keeps it, and most messages change deeper levels.
    """

    __slots__ = ("_wedge", "_wires", "_wtop", "_wtop_n")

    def __init__(self, *, descending: bool) -> None:
        super().__init__(descending=descending)
        self._wires: dict[Fixed, str] = {}
        self._wtop: tuple[str, ...] | None = None
        self._wtop_n = 0
        self._wedge: Fixed | None = None

    def update_wire(self, changes: Iterable[WireLevel]) -> None:
        """``update`` for levels carrying their text; the same text is the same amount."""
        levels = self._levels
        wires = self._wires
        keys = self._keys
        negate = self._negate
        cached = self._top is not None
        edge = self._edge
        wcached = self._wtop is not None
        wedge = self._wedge
        for price, amount, wire in changes:
            key = -price if negate else price
            old = wires.get(key)
            if amount:
                if old is None:
                    insort(keys, key)
                elif old == wire:
                    continue
                levels[key] = new_level(Level, (price, amount))
                wires[key] = wire
            elif old is not None:
                del levels[key]
                del wires[key]
                del keys[bisect_left(keys, key)]
            else:
                continue
            if cached and (edge is None or key <= edge):
                cached = False
                self._top = None
            if wcached and (wedge is None or key <= wedge):
                wcached = False
                self._wtop = None

    def build_wire(
        self, changes: Iterable[WireLevel]
    ) -> tuple[dict[Fixed, Level], dict[Fixed, str]]:
        """A snapshot's tables (later levels win, amount zero removes), built apart."""
        negate = self._negate
        table: dict[Fixed, Level] = {}
        wires: dict[Fixed, str] = {}
        for price, amount, wire in changes:
            key = -price if negate else price
            if amount:
                table[key] = new_level(Level, (price, amount))
                wires[key] = wire
            else:
                table.pop(key, None)
                wires.pop(key, None)
        return table, wires

    def install_wire(self, table: dict[Fixed, Level], wires: dict[Fixed, str]) -> None:
        self.install(table)
        self._wires = wires
        self._wtop = None

    def truncate(self, depth: int) -> list[Fixed]:
        keys = self._keys
        if len(keys) <= depth:
            return []
        wires = self._wires
        for key in keys[depth:]:
            del wires[key]
        if self._wtop is not None and (self._wedge is None or self._wtop_n > depth):
            self._wtop = None
        return super().truncate(depth)

    def wires(self, n: int) -> tuple[str, ...]:
        """The checksum texts of the best ``n`` levels, best first."""
        cached = self._wtop
        if cached is not None and n == self._wtop_n:
            return cached
        keys = self._keys[:n]
        out: tuple[str, ...]
        if len(keys) > 1:
            out = itemgetter(*keys)(self._wires)
        else:
            out = tuple(map(self._wires.__getitem__, keys))
        if n > 0:
            self._wtop = out
            self._wtop_n = n
            self._wedge = keys[-1] if len(keys) == n else None
        return out

    def clear(self) -> None:
        super().clear()
        self._wires.clear()
        self._wtop = None


class FullDepthBook:
    """A full-depth book kept from a snapshot plus absolute-quantity diffs.

    Amount zero removes a level; removing an unknown level is a no-op. The
    sync rules (which diffs to apply) live in each venue's protocol module; this
    class only holds state. With ``keep_wire`` it also keeps each level's checksum
    text (``WireLevel``), fed by ``load_wire``/``apply_wire`` and read best first by
    ``wires``; ``truncate`` keeps the book to a subscribed depth for venues that send
    no delete for a level falling out of it.
    """

    __slots__ = ("_asks", "_bids", "_wasks", "_wbids", "keeps_wire")

    def __init__(self, *, keep_wire: bool = False) -> None:
        self.keeps_wire = keep_wire
        if keep_wire:
            self._wbids = _WireSide(descending=True)
            self._wasks = _WireSide(descending=False)
            self._bids: _SortedSide = self._wbids
            self._asks: _SortedSide = self._wasks
        else:
            self._bids = _SortedSide(descending=True)
            self._asks = _SortedSide(descending=False)

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def _wire_sides(self) -> tuple[_WireSide, _WireSide]:
        if not self.keeps_wire:
            raise TypeError("this book keeps no checksum texts (keep_wire=False)")
        return self._wbids, self._wasks

    def load_wire(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        """``load`` with each level's checksum text; all or nothing."""
        wbids, wasks = self._wire_sides()
        bid_tables = wbids.build_wire(bids)
        ask_tables = wasks.build_wire(asks)
        wbids.install_wire(*bid_tables)
        wasks.install_wire(*ask_tables)

    def apply_wire(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        """``apply`` with each level's checksum text."""
        if not self.keeps_wire:
            self._wire_sides()  # raises
        if bids:
            self._wbids.update_wire(bids)
        if asks:
            self._wasks.update_wire(asks)

    def wires(self, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The checksum texts of the best ``n`` bids and asks, best first (cached)."""
        if not self.keeps_wire:
            self._wire_sides()  # raises
        # The cache checks of ``_WireSide.wires`` inlined: read after every message.
        wbids = self._wbids
        bids = wbids._wtop
        if bids is None or wbids._wtop_n != n:
            bids = wbids.wires(n)
        wasks = self._wasks
        asks = wasks._wtop
        if asks is None or wasks._wtop_n != n:
            asks = wasks.wires(n)
        return bids, asks

    def crossed(self) -> bool:
        """The best bid is at or above the best ask (crossed or locked): for one venue's
        own book, proof that it is wrong."""
        # Read after every applied diff: the keys directly, no method calls.
        bids = self._bids._keys
        asks = self._asks._keys
        return bool(bids) and bool(asks) and -bids[0] >= asks[0]

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (and their checksum texts)."""
        self._bids.truncate(depth)
        self._asks.truncate(depth)

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
