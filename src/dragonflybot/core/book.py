"""Venue order books: top-N snapshots and full-depth books maintained from diffs.

A level is a ``(price, amount)`` tuple of fixed-point ints (``core.fixed``). Both
book kinds expose the same read API, ``top_bids(n)`` / ``top_asks(n)``, best first.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from dragonflybot.core.fixed import Fixed


class Level(NamedTuple):
    """One price level. A NamedTuple so it compares and hashes as a plain tuple."""

    price: Fixed
    amount: Fixed


Side = tuple[Level, ...]
"""An immutable, best-first run of levels."""


class TopBook:
    """A venue's top N, replaced whole by each message (Binance depth20, Bitstamp order_book).

    The venue already sends each side best first; we keep its order but validate
    it, because a merge over unsorted input would be silently wrong.
    """

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: Side = ()
        self.asks: Side = ()

    def replace(self, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        """Install a new snapshot; zero-amount levels are dropped, order is checked.

        Raises ``ValueError`` if a side is not strictly ordered best first; the book
        is left unchanged in that case.
        """
        new_bids = tuple(lv for lv in bids if lv.amount)
        new_asks = tuple(lv for lv in asks if lv.amount)
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


class _SortedSide:
    """price -> amount, plus the prices kept sorted ascending.

    Reading the top N is a slice, never a sort. Inserting a new price is a
    ``bisect.insort`` (an O(n) memmove in C, cheap for the few thousand levels a
    venue publishes); most updates change the amount of a known price and touch
    only the dict. Bids store negated prices so that "best first" is ascending on
    both sides.
    """

    __slots__ = ("_keys", "_levels", "_sign")

    def __init__(self, sign: int) -> None:
        self._sign = sign
        self._levels: dict[Fixed, Fixed] = {}
        self._keys: list[Fixed] = []

    def __len__(self) -> int:
        return len(self._levels)

    def set(self, price: Fixed, amount: Fixed) -> None:
        levels = self._levels
        if amount:
            if price not in levels:
                insort(self._keys, price * self._sign)
            levels[price] = amount
        elif price in levels:
            del levels[price]
            keys = self._keys
            del keys[bisect_left(keys, price * self._sign)]
        # Removing a level we do not hold is normal (venues say so): ignore it.

    def top(self, n: int) -> Side:
        levels = self._levels
        sign = self._sign
        return tuple(Level(k * sign, levels[k * sign]) for k in self._keys[:n])

    def clear(self) -> None:
        self._levels.clear()
        self._keys.clear()

    def items(self) -> dict[Fixed, Fixed]:
        return dict(self._levels)


class FullDepthBook:
    """A full-depth book kept from a snapshot plus absolute-quantity diffs.

    Amount zero removes a level; removing an unknown level is a no-op. The
    sync rules (which diffs to apply) live in each venue's protocol module; this
    class only holds state.
    """

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids = _SortedSide(-1)
        self._asks = _SortedSide(1)

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book with a snapshot."""
        self.clear()
        self.apply(bids, asks)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply one diff message; every level of the message lands before any read."""
        set_bid = self._bids.set
        for price, amount in bids:
            set_bid(price, amount)
        set_ask = self._asks.set
        for price, amount in asks:
            set_ask(price, amount)

    def set_bid(self, price: Fixed, amount: Fixed) -> None:
        self._bids.set(price, amount)

    def set_ask(self, price: Fixed, amount: Fixed) -> None:
        self._asks.set(price, amount)

    def top_bids(self, n: int) -> Side:
        return self._bids.top(n)

    def top_asks(self, n: int) -> Side:
        return self._asks.top(n)

    @property
    def depth(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bids), len(self._asks)

    def bids_dict(self) -> dict[Fixed, Fixed]:
        """A copy of the bid side, for checks and tests."""
        return self._bids.items()

    def asks_dict(self) -> dict[Fixed, Fixed]:
        return self._asks.items()
