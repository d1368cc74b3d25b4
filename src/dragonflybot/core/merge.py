"""The consolidated top-N merge across venues (the "BBO world view").

Ordering rule: bids by price descending, asks by price ascending; ties by amount
descending, then by venue name. Spread = best ask - best bid, exact, and negative
when venues cross: a crossed consolidated book is real and is published.

Empty side: when either side has no level (no live venue, or every live venue
has an empty side) ``spread`` is ``None``; the service publishes it as ``0.0``
with that side's list empty, so a client must read the lists, never the spread
alone. No sentinel price ever appears.

The merge runs once per aggregator batch, so it only ever walks the heads of the
venues' already sorted sides: O(N log k) for N output levels from k venues, never
a sort of everything. Two venues (the usual deployment) take a two-pointer path
with no heap at all; more use a heap of one mutable cursor per venue, so the only
allocations per level are the output levels themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from heapq import heapify, heappop, heapreplace
from typing import Any, NamedTuple

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


# A NamedTuple's generated __new__ is a Python function around tuple.__new__;
# calling tuple.__new__ directly builds the same object without that frame,
# and this runs once per published level.
_new_tuple: Any = tuple.__new__


def merge(views: Iterable[VenueView], depth: int, excluded: Collection[str] = ()) -> Consolidated:
    """Merge the venues' top levels into the consolidated top ``depth`` per side.

    Venue names are expected to be unique (the aggregator keeps one view per
    venue); views whose venue is in ``excluded`` contribute nothing.
    """
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
    bids = _merge_side(bid_sides, depth, descending=True)
    asks = _merge_side(ask_sides, depth, descending=False)
    spread = asks[0].price - bids[0].price if bids and asks else None
    return Consolidated(bids, asks, spread)


def _merge_side(
    sides: list[tuple[str, Side]], depth: int, *, descending: bool
) -> tuple[MergedLevel, ...]:
    if not sides or depth == 0:
        return ()
    if len(sides) == 1:
        venue, side = sides[0]
        return _label(venue, side[:depth])
    if len(sides) == 2:
        (venue_a, side_a), (venue_b, side_b) = sides
        return _merge_two(venue_a, side_a, venue_b, side_b, depth, descending)
    return _merge_heap(sides, depth, -1 if descending else 1)


def _label(venue: str, levels: Side) -> tuple[MergedLevel, ...]:
    return tuple([_new_tuple(MergedLevel, (venue, price, amount)) for price, amount in levels])


def _merge_two(
    venue_a: str, side_a: Side, venue_b: str, side_b: Side, depth: int, descending: bool
) -> tuple[MergedLevel, ...]:
    out: list[MergedLevel] = []
    append = out.append
    i = j = 0
    len_a = len(side_a)
    len_b = len(side_b)
    a_wins_full_tie = venue_a < venue_b
    while len(out) < depth and i < len_a and j < len_b:
        price_a, amount_a = side_a[i]
        price_b, amount_b = side_b[j]
        if price_a == price_b:
            take_a = amount_a > amount_b or (amount_a == amount_b and a_wins_full_tie)
        else:
            take_a = (price_a > price_b) is descending
        if take_a:
            append(_new_tuple(MergedLevel, (venue_a, price_a, amount_a)))
            i += 1
        else:
            append(_new_tuple(MergedLevel, (venue_b, price_b, amount_b)))
            j += 1
    missing = depth - len(out)
    if missing > 0:
        # One side ran out: the rest comes from the other, already in order.
        if i < len_a:
            out.extend(_label(venue_a, side_a[i : i + missing]))
        elif j < len_b:
            out.extend(_label(venue_b, side_b[j : j + missing]))
    return tuple(out)


def _merge_heap(sides: list[tuple[str, Side]], depth: int, sign: int) -> tuple[MergedLevel, ...]:
    # One cursor per venue: [signed price, -amount, venue, index, position]. Lists
    # compare like tuples, and updating the cursor in place avoids allocating a
    # heap entry per level. Index is unique, so comparison never reaches position.
    heap: list[list[Any]] = [
        [side[0][0] * sign, -side[0][1], venue, index, 0]
        for index, (venue, side) in enumerate(sides)
    ]
    heapify(heap)
    out: list[MergedLevel] = []
    append = out.append
    for _ in range(depth):
        cursor = heap[0]
        key_price, neg_amount, venue, index, position = cursor
        append(_new_tuple(MergedLevel, (venue, key_price * sign, -neg_amount)))
        side = sides[index][1]
        position += 1
        if position < len(side):
            price, amount = side[position]
            cursor[0] = price * sign
            cursor[1] = -amount
            cursor[4] = position
            heapreplace(heap, cursor)
        else:
            heappop(heap)
            if not heap:
                break
    return tuple(out)
