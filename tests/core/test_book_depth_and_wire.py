"""FullDepthBook's optional parts: truncation to a depth, checksum texts, the crossed check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.core.book import FullDepthBook, Level

from .strategies import amounts, prices

maybe_zero = st.one_of(st.just(0), amounts)
changes = st.lists(st.tuples(prices, maybe_zero), max_size=20)


def model_apply(model: dict[int, int], levels: list[tuple[int, int]]) -> None:
    for price, amount in levels:
        if amount:
            model[price] = amount
        else:
            model.pop(price, None)


@given(st.lists(st.tuples(changes, changes), max_size=15), st.integers(1, 8), st.integers(0, 12))
def test_truncated_book_is_the_models_best_levels(
    steps: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]], depth: int, read: int
) -> None:
    """After every message + truncate, the book is the model's best ``depth`` per side,
    and the checksum texts (cached reads included) are exactly those of the levels held."""
    book = FullDepthBook(keep_wire=True)
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for bid_changes, ask_changes in steps:
        book.top(read)  # a cached read must never survive a truncation it should not
        book.wires(read)
        book.apply_wire(
            [(p, a, f"{p}:{a}") for p, a in bid_changes],
            [(p, a, f"{p}:{a}") for p, a in ask_changes],
        )
        book.truncate(depth)
        model_apply(bids, bid_changes)
        model_apply(asks, ask_changes)
        bids = {p: bids[p] for p in sorted(bids, reverse=True)[:depth]}
        asks = {p: asks[p] for p in sorted(asks)[:depth]}
        assert book.bids_dict() == bids and book.asks_dict() == asks
        top_bids, top_asks = book.top(read)
        assert top_bids == tuple(Level(p, bids[p]) for p in sorted(bids, reverse=True)[:read])
        assert top_asks == tuple(Level(p, asks[p]) for p in sorted(asks)[:read])
        wire_bids, wire_asks = book.wires(read)
        assert wire_bids == tuple(f"{lv.price}:{lv.amount}" for lv in top_bids)
        assert wire_asks == tuple(f"{lv.price}:{lv.amount}" for lv in top_asks)
        assert book.wires(depth) == (
            tuple(f"{p}:{bids[p]}" for p in sorted(bids, reverse=True)),
            tuple(f"{p}:{asks[p]}" for p in sorted(asks)),
        )
        crossed = bool(bids) and bool(asks) and max(bids) >= min(asks)
        assert book.crossed() == crossed


def test_checksum_texts_are_off_by_default_and_cleared_with_the_book() -> None:
    plain = FullDepthBook()
    assert not plain.keeps_wire
    with pytest.raises(TypeError):
        plain.wires(1)
    book = FullDepthBook(keep_wire=True)
    book.load_wire([(2, 1, "2.0:1")], [(3, 1, "3.0:1")])
    assert book.wires(5) == (("2.0:1",), ("3.0:1",))
    assert not book.crossed()
    book.apply_wire([(3, 1, "3.0:1")], [])
    assert book.crossed()  # locked: best bid == best ask
    assert book.wires(5) == (("3.0:1", "2.0:1"), ("3.0:1",))
    book.clear()
    assert book.wires(5) == ((), ()) and not book.crossed()
