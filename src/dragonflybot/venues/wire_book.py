"""A full-depth book that keeps, per level, the text a venue's checksum is computed over.

Kraken and OKX prove a book right with a CRC32 over its best levels written as the
venue writes them: OKX over the exact strings last received for each price, Kraken
v1 over its fixed-width strings, Kraken v2 over the values formatted with the
pair's precision. ``core.book.FullDepthBook`` keeps parsed values only and cannot
drop the tail of a side, which Kraken requires (it sends no delete for a level
pushed out of the subscribed depth). So this book stores, beside each ``Level``,
one opaque ``wire`` string built by the venue module when the level is parsed
(already in the form its checksum concatenates), and can truncate a side.

Reading the best ``n`` wires is a slice of the sorted keys and ``n`` dict lookups:
the checksum costs no formatting at all after a message, only at parse time for
the levels the message changed.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from operator import itemgetter

from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import Fixed

_new_level = tuple.__new__


WireLevel = tuple[Fixed, Fixed, str]
"""A parsed change: ``(price, absolute amount, checksum text)``; amount zero removes.

A plain tuple, not a NamedTuple: a venue builds one per level of every message,
and a tuple display costs a tenth of a NamedTuple's constructor."""


class WireSide:
    """One side: levels and wire texts by sort key (price, or minus price for bids).

    The last top-``n`` read is cached like ``core.book``'s sides, and so is the last
    read of the best wire texts (the checksum's input): a change behind the cached
    edge leaves a cache valid, because the listener reads the top and the checksum
    after every message and most messages change deeper levels.
    """

    __slots__ = (
        "_edge",
        "_keys",
        "_levels",
        "_negate",
        "_top",
        "_top_n",
        "_wedge",
        "_wires",
        "_wtop",
        "_wtop_n",
    )

    def __init__(self, *, descending: bool) -> None:
        self._negate = descending
        self._levels: dict[Fixed, Level] = {}
        self._wires: dict[Fixed, str] = {}
        self._keys: list[Fixed] = []
        self._top: Side | None = None
        self._top_n = 0
        self._edge: Fixed | None = None
        self._wtop: tuple[str, ...] | None = None
        self._wtop_n = 0
        self._wedge: Fixed | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def update(self, changes: Iterable[WireLevel]) -> None:
        """Apply absolute amounts in order; removing an unknown price is a no-op."""
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
                    continue  # the same text is the same amount: nothing changes
                levels[key] = _new_level(Level, (price, amount))
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

    def load(self, changes: Iterable[WireLevel]) -> None:
        """Replace the side (later levels win, amount zero removes)."""
        negate = self._negate
        levels: dict[Fixed, Level] = {}
        wires: dict[Fixed, str] = {}
        for price, amount, wire in changes:
            key = -price if negate else price
            if amount:
                levels[key] = _new_level(Level, (price, amount))
                wires[key] = wire
            else:
                levels.pop(key, None)
                wires.pop(key, None)
        self._levels = levels
        self._wires = wires
        self._keys = sorted(levels)
        self._top = None
        self._wtop = None

    def truncate(self, depth: int) -> None:
        """Keep the best ``depth`` levels only."""
        keys = self._keys
        if len(keys) <= depth:
            return
        levels = self._levels
        wires = self._wires
        for key in keys[depth:]:
            del levels[key]
            del wires[key]
        del keys[depth:]
        if self._top is not None and (self._edge is None or self._top_n > depth):
            self._top = None
        if self._wtop is not None and (self._wedge is None or self._wtop_n > depth):
            self._wtop = None

    def top(self, n: int) -> Side:
        cached = self._top
        if cached is not None and 0 <= n <= self._top_n:
            return cached if n == self._top_n else cached[:n]
        keys = self._keys[:n]
        top: Side
        if len(keys) > 1:
            top = itemgetter(*keys)(self._levels)
        else:
            top = tuple(map(self._levels.__getitem__, keys))
        if n > 0:
            self._top = top
            self._top_n = n
            self._edge = keys[-1] if len(keys) == n else None
        return top

    def wires(self, n: int) -> tuple[str, ...]:
        """The wire texts of the best ``n`` levels, best first."""
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
        self._levels.clear()
        self._wires.clear()
        self._keys.clear()
        self._top = None
        self._wtop = None

    def items(self) -> dict[Fixed, Fixed]:
        return {price: amount for price, amount in self._levels.values()}


class WireBook:
    """Bids and asks with their checksum texts; the read API of ``core.book``'s books."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = WireSide(descending=True)
        self.asks = WireSide(descending=False)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def load(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        self.bids.load(bids)
        self.asks.load(asks)

    def apply(self, bids: Iterable[WireLevel], asks: Iterable[WireLevel]) -> None:
        """One message: every level lands before anything is read."""
        self.bids.update(bids)
        self.asks.update(asks)

    def truncate(self, depth: int) -> None:
        self.bids.truncate(depth)
        self.asks.truncate(depth)

    def top_bids(self, n: int) -> Side:
        return self.bids.top(n)

    def top_asks(self, n: int) -> Side:
        return self.asks.top(n)

    def top(self, n: int) -> tuple[Side, Side]:
        return self.bids.top(n), self.asks.top(n)

    @property
    def depth(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self.bids), len(self.asks)

    def bids_dict(self) -> dict[Fixed, Fixed]:
        """A copy of the bid side, for checks and tests."""
        return self.bids.items()

    def asks_dict(self) -> dict[Fixed, Fixed]:
        return self.asks.items()
