"""FullDepthBook's optional parts: truncation to a depth, wire strings, the crossed check."""

from __future__ import annotations

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
    and the wire strings are exactly those of the levels held."""
    book = FullDepthBook(keep_wire=True)
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for bid_changes, ask_changes in steps:
        book.top(read)  # a cached read must never survive a truncation it should not
        book.apply(bid_changes, ask_changes)
        assert book.wire is not None
        book.wire.apply(
            bid_changes,
            ask_changes,
            [(str(p), str(a)) for p, a in bid_changes],
            [(str(p), str(a)) for p, a in ask_changes],
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
        assert book.wire.bids == {p: (str(p), str(a)) for p, a in bids.items()}
        assert book.wire.asks == {p: (str(p), str(a)) for p, a in asks.items()}
        assert book.wire.side(top_bids, book.wire.bids) == [
            (str(lv.price), str(lv.amount)) for lv in top_bids
        ]
        crossed = bool(bids) and bool(asks) and max(bids) >= min(asks)
        assert book.crossed() == crossed


def test_wire_strings_are_off_by_default_and_cleared_with_the_book() -> None:
    assert FullDepthBook().wire is None
    book = FullDepthBook(keep_wire=True)
    assert book.wire is not None
    book.apply([(2, 1)], [(3, 1)])
    book.wire.apply([(2, 1)], [(3, 1)], [("2.0", "1")], [("3.0", "1")])
    assert not book.crossed()
    book.apply([(3, 1)], [])
    assert book.crossed()  # locked: best bid == best ask
    book.clear()
    assert book.wire.bids == {} and book.wire.asks == {} and not book.crossed()
