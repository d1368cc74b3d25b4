"""The consolidated top-N merge across venues (the "BBO world view").

Ordering rule: bids by price descending, asks by price ascending; ties by amount
descending, then by venue name. Spread = best ask - best bid, exact, and negative
when venues cross: a crossed consolidated book is real and is published.

Empty side: when either side has no level (no live venue, or every live venue
has an empty side) ``spread`` is ``None``; the service publishes it as ``0.0``
with that side's list empty, so a client must read the lists, never the spread
alone. No sentinel price ever appears.

The merge is a k-way heap merge over the venues' already sorted sides: it costs
O(N log k) for N output levels from k venues and allocates only the output.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from typing import NamedTuple

import attrs

from dragonflybot.core.book import Side
from dragonflybot.core.fixed import Fixed
from dragonflybot.core.view import VenueView


class MergedLevel(NamedTuple):
    venue: str
    price: Fixed
    amount: Fixed


@attrs.frozen(slots=True)
class Consolidated:
    """The consolidated top N. ``spread`` is ``None`` when a side is empty."""

    bids: tuple[MergedLevel, ...]
    asks: tuple[MergedLevel, ...]
    spread: Fixed | None

    @classmethod
    def empty(cls) -> Consolidated:
        return cls((), (), None)


def merge(views: Iterable[VenueView], depth: int, excluded: Collection[str] = ()) -> Consolidated:
    """Merge the venues' top levels into the consolidated top ``depth`` per side."""
    if depth < 0:
        raise ValueError("depth must be >= 0")
    bid_sides: list[tuple[str, Side]] = []
    ask_sides: list[tuple[str, Side]] = []
    for view in views:
        if view.venue in excluded:
            continue
        if view.bids:
            bid_sides.append((view.venue, view.bids))
        if view.asks:
            ask_sides.append((view.venue, view.asks))
    bids = _merge_side(bid_sides, depth, -1)
    asks = _merge_side(ask_sides, depth, 1)
    spread = asks[0].price - bids[0].price if bids and asks else None
    return Consolidated(bids, asks, spread)


def _merge_side(sides: list[tuple[str, Side]], depth: int, sign: int) -> tuple[MergedLevel, ...]:
    if not sides or depth == 0:
        return ()
    if len(sides) == 1:
        venue, side = sides[0]
        return tuple(MergedLevel(venue, p, a) for p, a in side[:depth])
    # Heap entries: (signed price, -amount, venue, side index, position). Venue names
    # are unique, so comparison never reaches the ints after the name.
    heap = [(side[0][0] * sign, -side[0][1], venue, i, 0) for i, (venue, side) in enumerate(sides)]
    heapq.heapify(heap)
    out: list[MergedLevel] = []
    append = out.append
    while heap and len(out) < depth:
        key_price, neg_amount, venue, i, pos = heap[0]
        append(MergedLevel(venue, key_price * sign, -neg_amount))
        side = sides[i][1]
        pos += 1
        if pos < len(side):
            nxt = side[pos]
            heapq.heapreplace(heap, (nxt[0] * sign, -nxt[1], venue, i, pos))
        else:
            heapq.heappop(heap)
    return tuple(out)
