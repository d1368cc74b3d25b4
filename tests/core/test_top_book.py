"""TopBook keeps a venue's snapshot only when each side is strictly ordered best first."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.core.book import Level, Side, TopBook

from .strategies import amounts, prices, sides

raw_levels = st.lists(
    st.builds(Level, prices, st.one_of(st.just(0), amounts)),
    max_size=30,
)


def strictly(levels: Side, *, descending: bool) -> bool:
    pairs = pairwise(levels)
    if descending:
        return all(a.price > b.price for a, b in pairs)
    return all(a.price < b.price for a, b in pairs)


@given(sides(descending=True), sides(descending=False), st.integers(0, 60))
def test_valid_snapshot_is_kept_and_read_best_first(bids: Side, asks: Side, n: int) -> None:
    book = TopBook()
    book.replace(bids, asks)
    assert book.bids == bids
    assert book.asks == asks
    assert book.top_bids(n) == bids[:n]
    assert book.top_asks(n) == asks[:n]


@given(
    sides(descending=True),
    sides(descending=False),
    raw_levels,
    raw_levels,
)
def test_replace_drops_zero_amounts_and_rejects_disorder_atomically(
    old_bids: Side, old_asks: Side, new_bids: list[Level], new_asks: list[Level]
) -> None:
    book = TopBook()
    book.replace(old_bids, old_asks)
    kept_bids = tuple(lv for lv in new_bids if lv.amount)
    kept_asks = tuple(lv for lv in new_asks if lv.amount)
    valid = strictly(kept_bids, descending=True) and strictly(kept_asks, descending=False)
    if valid:
        book.replace(new_bids, new_asks)
        assert book.bids == kept_bids
        assert book.asks == kept_asks
    else:
        with pytest.raises(ValueError, match="not strictly"):
            book.replace(new_bids, new_asks)
        assert book.bids == old_bids
        assert book.asks == old_asks


def test_unsorted_side_is_rejected_and_book_kept() -> None:
    book = TopBook()
    good_bids = (Level(3, 1), Level(2, 1))
    good_asks = (Level(4, 1), Level(5, 1))
    book.replace(good_bids, good_asks)
    with pytest.raises(ValueError, match="bids are not strictly descending"):
        book.replace((Level(2, 1), Level(3, 1)), good_asks)
    with pytest.raises(ValueError, match="asks are not strictly ascending"):
        book.replace(good_bids, (Level(5, 1), Level(5, 2)))
    assert (book.bids, book.asks) == (good_bids, good_asks)


def test_zero_amount_levels_are_dropped_before_the_order_check() -> None:
    book = TopBook()
    # The zero level would break the order if it were kept.
    book.replace((Level(3, 1), Level(9, 0), Level(2, 1)), (Level(4, 0), Level(5, 1)))
    assert book.bids == (Level(3, 1), Level(2, 1))
    assert book.asks == (Level(5, 1),)


def test_clear_empties_both_sides() -> None:
    book = TopBook()
    book.replace((Level(3, 1),), (Level(4, 1),))
    book.clear()
    assert book.top_bids(10) == ()
    assert book.top_asks(10) == ()
