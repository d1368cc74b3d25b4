"""FullDepthBook against a plain dict model, read best first after every step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dragonflybot.core.book import FullDepthBook, Level, Side
from dragonflybot.errors import DecodeError

from .strategies import amounts, prices

READ_DEPTH = 10

maybe_zero = st.one_of(st.just(0), amounts)
# Levels or the plain (price, amount) tuples the venue protocols pass: the book keeps Levels.
updates = st.lists(
    st.one_of(st.builds(Level, prices, maybe_zero), st.tuples(prices, maybe_zero)), max_size=25
)


def model_top(model: dict[int, int], n: int, *, bids: bool) -> Side:
    ordered = sorted(model, reverse=bids)[:n]
    return tuple(Level(price, model[price]) for price in ordered)


def model_set(model: dict[int, int], price: int, amount: int) -> None:
    if amount:
        model[price] = amount
    else:
        model.pop(price, None)


class FullDepthMachine(RuleBasedStateMachine):
    """Random diffs, removals (known and unknown), snapshots and reads of any depth."""

    def __init__(self) -> None:
        super().__init__()
        self.book = FullDepthBook()
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    @rule(price=prices, amount=maybe_zero)
    def set_bid(self, price: int, amount: int) -> None:
        self.book.set_bid(price, amount)
        model_set(self.bids, price, amount)

    @rule(price=prices, amount=maybe_zero)
    def set_ask(self, price: int, amount: int) -> None:
        self.book.set_ask(price, amount)
        model_set(self.asks, price, amount)

    @rule(bids=updates, asks=updates)
    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        self.book.apply(bids, asks)
        for price, amount in bids:
            model_set(self.bids, price, amount)
        for price, amount in asks:
            model_set(self.asks, price, amount)

    @precondition(lambda self: self.bids)
    @rule(data=st.data())
    def remove_known_bid(self, data: st.DataObject) -> None:
        price = data.draw(st.sampled_from(sorted(self.bids)))
        self.book.set_bid(price, 0)
        del self.bids[price]

    @precondition(lambda self: self.asks)
    @rule(data=st.data())
    def remove_known_ask(self, data: st.DataObject) -> None:
        price = data.draw(st.sampled_from(sorted(self.asks)))
        self.book.apply((), [Level(price, 0)])
        del self.asks[price]

    @rule(price=prices)
    def remove_unknown(self, price: int) -> None:
        """Venues send removals for levels we never had: a no-op, never an error."""
        before = (self.book.top_bids(READ_DEPTH), self.book.top_asks(READ_DEPTH))
        if price not in self.bids:
            self.book.set_bid(price, 0)
        if price not in self.asks:
            self.book.set_ask(price, 0)
        if price not in self.bids and price not in self.asks:
            assert (self.book.top_bids(READ_DEPTH), self.book.top_asks(READ_DEPTH)) == before

    @rule(bids=updates, asks=updates)
    def load(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """A snapshot replaces everything; within it, later levels win (zero removes)."""
        self.book.load(bids, asks)
        self.bids.clear()
        self.asks.clear()
        for price, amount in bids:
            model_set(self.bids, price, amount)
        for price, amount in asks:
            model_set(self.asks, price, amount)

    @rule()
    def clear(self) -> None:
        self.book.clear()
        self.bids.clear()
        self.asks.clear()

    @rule(n=st.integers(min_value=-3, max_value=60))
    def read_any_depth(self, n: int) -> None:
        """Any n, like slicing a best-first list (TopBook reads the same way)."""
        assert self.book.top_bids(n) == model_top(self.bids, n, bids=True)
        assert self.book.top_asks(n) == model_top(self.asks, n, bids=False)
        assert self.book.top(n) == (
            model_top(self.bids, n, bids=True),
            model_top(self.asks, n, bids=False),
        )

    @invariant()
    def top_matches_model(self) -> None:
        bids, asks = self.book.top(READ_DEPTH)
        assert bids == model_top(self.bids, READ_DEPTH, bids=True)
        assert asks == model_top(self.asks, READ_DEPTH, bids=False)
        assert all(type(level) is Level for level in bids + asks)
        assert self.book.top_bids(READ_DEPTH) == bids
        assert self.book.top_asks(READ_DEPTH) == asks

    @invariant()
    def contents_match_model(self) -> None:
        assert self.book.depth == (len(self.bids), len(self.asks))
        assert self.book.bids_dict() == self.bids
        assert self.book.asks_dict() == self.asks


FullDepthMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestFullDepthBook = FullDepthMachine.TestCase


def test_reads_are_best_first_on_both_sides() -> None:
    book = FullDepthBook()
    book.load([Level(5, 1), Level(7, 2), Level(6, 3)], [Level(9, 1), Level(8, 2), Level(10, 3)])
    assert book.top_bids(2) == (Level(7, 2), Level(6, 3))
    assert book.top_asks(2) == (Level(8, 2), Level(9, 1))
    book.apply([Level(7, 0), Level(4, 1)], [Level(8, 5)])
    assert book.top_bids(5) == (Level(6, 3), Level(5, 1), Level(4, 1))
    assert book.top_asks(1) == (Level(8, 5),)


def test_changes_at_and_behind_the_last_read_level() -> None:
    """The edge of a previous top-N read: a change there shows, one behind it does not."""
    book = FullDepthBook()
    book.load([Level(9, 1), Level(8, 1), Level(7, 1)], [])
    assert book.top_bids(2) == (Level(9, 1), Level(8, 1))
    book.set_bid(8, 5)
    assert book.top_bids(2) == (Level(9, 1), Level(8, 5))
    book.set_bid(7, 5)
    book.set_bid(6, 1)
    assert book.top_bids(2) == (Level(9, 1), Level(8, 5))
    book.set_bid(8, 0)
    assert book.top_bids(2) == (Level(9, 1), Level(7, 5))
    assert book.top_bids(4) == (Level(9, 1), Level(7, 5), Level(6, 1))
    book.set_bid(5, 1)
    assert book.top_bids(4) == (Level(9, 1), Level(7, 5), Level(6, 1), Level(5, 1))


def test_a_top_read_is_the_same_tuple_until_a_change_reaches_it() -> None:
    """What lets the change-forwarder skip comparing levels: identity means unchanged."""
    book = FullDepthBook()
    book.load([(9, 1), (8, 1), (7, 1)], [(10, 1), (11, 1), (12, 1)])
    bids, asks = book.top(2)
    book.apply([(7, 2), (6, 1), (5, 0)], [(12, 3), (13, 1)])  # all behind the read levels
    assert book.top(2)[0] is bids and book.top(2)[1] is asks
    book.apply([(8, 1)], [(11, 1)])  # a repeated amount changes nothing
    assert book.top(2)[0] is bids and book.top(2)[1] is asks
    book.apply([(8, 4)], [])
    new_bids, same_asks = book.top(2)
    assert new_bids == (Level(9, 1), Level(8, 4)) and same_asks is asks
    book.apply([], [(10, 0)])
    assert book.top(2) == ((Level(9, 1), Level(8, 4)), (Level(11, 1), Level(12, 3)))


def test_a_snapshot_that_fails_half_way_leaves_the_book_unchanged() -> None:
    book = FullDepthBook()
    book.load([Level(5, 1)], [Level(6, 1)])

    def broken() -> Iterator[Level]:
        yield Level(7, 1)
        raise DecodeError("bad level")

    with pytest.raises(DecodeError):
        book.load([Level(4, 1)], broken())
    assert book.bids_dict() == {5: 1}
    assert book.asks_dict() == {6: 1}
    assert book.top_bids(10) == (Level(5, 1),)
