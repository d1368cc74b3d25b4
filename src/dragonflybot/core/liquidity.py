"""Aggregated liquidity: the consolidated depth ladder and the cost to trade a size.

The BBO world view (``core.merge``) keeps every venue's level apart, labelled
with its venue. A client that routes orders asks a different question: how much
is there at each price, whoever holds it, and what would a given size cost if
taken across every venue at once. Both answers are built here from the same
``VenueView`` values the BBO aggregator merges, so no second venue connection
is needed and the two views never disagree about the market.

Everything is exact: prices and amounts stay ``core.fixed`` ints, totals are int
sums, and averages (the VWAP, the mid) are ``fractions.Fraction`` of fixed-point
units, so a ratio is only rounded once, when it is formatted for the wire
(``format_ratio``). A view only shows a venue's top N, so the ladder is exact to
the depth the feeds are asked for (the app asks the feeds for at least the
ladder's depth), and the cost to trade walks only the visible levels: what is
beyond them is reported as missing liquidity, never guessed.

Allocation within one price: when a size ends part-way through a price that
several venues quote, the venues are taken in the merge's order (larger amount
first, then venue name), exactly as walking the BBO world view level by level.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple

import attrs

from dragonflybot.core.fixed import ONE, Fixed, to_str
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView


class TradeSide(enum.Enum):
    """The taker's side: a buy consumes the asks, a sell consumes the bids."""

    BUY = "buy"
    SELL = "sell"


class VenueAmount(NamedTuple):
    venue: str
    amount: Fixed


class LadderLevel(NamedTuple):
    """One consolidated price: the total and each contributing venue's part (by venue name)."""

    price: Fixed
    amount: Fixed
    venues: tuple[VenueAmount, ...]


@attrs.frozen(slots=True)
class Ladder:
    """Consolidated depth: at most ``depth`` prices per side, best first."""

    bids: tuple[LadderLevel, ...]
    asks: tuple[LadderLevel, ...]

    @classmethod
    def empty(cls) -> Ladder:
        return cls((), ())

    def mid(self) -> Fraction | None:
        """(best bid + best ask) / 2 in fixed-point units; ``None`` when a side is empty."""
        if not self.bids or not self.asks:
            return None
        return Fraction(self.bids[0].price + self.asks[0].price, 2)


def build_ladder(views: Iterable[VenueView], depth: int) -> Ladder:
    """The ladder of ``views`` (one per venue, names unique) to ``depth`` prices per side."""
    if depth < 0:
        raise ValueError("depth must be >= 0")
    bid_books: dict[Fixed, dict[str, Fixed]] = {}
    ask_books: dict[Fixed, dict[str, Fixed]] = {}
    for view in views:
        for price, amount in view.bids:
            bid_books.setdefault(price, {})[view.venue] = amount
        for price, amount in view.asks:
            ask_books.setdefault(price, {})[view.venue] = amount
    return Ladder(
        _ladder_side(bid_books, depth, descending=True),
        _ladder_side(ask_books, depth, descending=False),
    )


def _ladder_side(
    books: dict[Fixed, dict[str, Fixed]], depth: int, *, descending: bool
) -> tuple[LadderLevel, ...]:
    out = []
    for price in sorted(books, reverse=descending)[:depth]:
        by_venue = books[price]
        venues = tuple(VenueAmount(v, by_venue[v]) for v in sorted(by_venue))
        out.append(LadderLevel(price, sum(by_venue.values()), venues))
    return tuple(out)


@attrs.frozen(slots=True)
class TradeCost:
    """What taking ``quantity`` on ``side`` costs across the visible consolidated book.

    ``filled`` is False when the visible book holds less than ``quantity``: then
    ``available`` says how much there is, and the other figures describe taking
    all of it (``None`` when there is nothing at all).
    """

    side: TradeSide
    quantity: Fixed
    filled: bool
    available: Fixed
    """Total visible amount on the side consumed."""
    taken: Fixed
    """``quantity`` when filled, else ``available``."""
    vwap: Fraction | None
    """Volume-weighted average price of what is taken, in fixed-point units."""
    worst_price: Fixed | None
    """The last price reached."""
    mid: Fraction | None
    """Consolidated mid before the trade; ``None`` when either side is empty."""
    by_venue: tuple[VenueAmount, ...]
    """Amount taken from each venue, by venue name (venues with nothing taken omitted)."""

    @property
    def slippage(self) -> Fraction | None:
        """How much worse than the mid the VWAP is, in price units (negative if better)."""
        if self.vwap is None or self.mid is None:
            return None
        return self.vwap - self.mid if self.side is TradeSide.BUY else self.mid - self.vwap

    @property
    def slippage_bps(self) -> Fraction | None:
        """``slippage`` in basis points of the mid (``None`` when the mid is not positive)."""
        slippage = self.slippage
        if slippage is None or self.mid is None or self.mid <= 0:
            return None
        return slippage * 10_000 / self.mid


def cost_to_trade(views: Iterable[VenueView], side: TradeSide, quantity: Fixed) -> TradeCost:
    """Walk the merged book of ``views`` (every visible level) until ``quantity`` is taken."""
    if quantity <= 0:
        raise ValueError("quantity must be > 0")
    views = tuple(views)
    bids_levels = sum(len(v.bids) for v in views)
    asks_levels = sum(len(v.asks) for v in views)
    book = merge(views, max(bids_levels, asks_levels))
    mid = Fraction(book.bids[0].price + book.asks[0].price, 2) if book.bids and book.asks else None
    levels = book.asks if side is TradeSide.BUY else book.bids
    available = sum(level.amount for level in levels)
    remaining = quantity
    notional = 0
    worst: Fixed | None = None
    by_venue: dict[str, Fixed] = {}
    for level in levels:
        if remaining == 0:
            break
        take = min(remaining, level.amount)
        remaining -= take
        notional += take * level.price
        worst = level.price
        by_venue[level.venue] = by_venue.get(level.venue, 0) + take
    taken = quantity - remaining
    return TradeCost(
        side=side,
        quantity=quantity,
        filled=remaining == 0,
        available=available,
        taken=taken,
        vwap=Fraction(notional, taken) if taken else None,
        worst_price=worst,
        mid=mid,
        by_venue=tuple(VenueAmount(v, by_venue[v]) for v in sorted(by_venue)),
    )


def format_ratio(value: Fraction) -> str:
    """A fixed-point-unit ratio as a decimal string, rounded half-even to the last fixed digit.

    The one place an exact average is rounded: to ``core.fixed.SCALE`` decimals,
    finer than any venue's tick, so the string is exact whenever the value is.
    """
    return to_str(round(value))


def format_number(value: Fraction) -> str:
    """A plain ratio (basis points, say) as a decimal string, rounded like ``format_ratio``."""
    return to_str(round(value * ONE))
