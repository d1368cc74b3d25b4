"""``WireBook``: a book of levels and their checksum texts, against a plain dict model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.core.book import Level
from dragonflybot.venues.wire_book import WireBook, WireLevel

PRICES = st.integers(1, 60)
CHANGE = st.tuples(PRICES, st.integers(0, 3), st.sampled_from(["a", "b"]))
"""(price, amount, a spelling): the same amount may come spelled differently."""


def wire_levels(changes: list[tuple[int, int, str]]) -> list[WireLevel]:
    return [(p, a, f"{p}:{a}{s}" if a else "") for p, a, s in changes]


Model = dict[int, tuple[int, str]]


def apply(model: Model, changes: list[tuple[int, int, str]]) -> None:
    for p, a, s in changes:
        if a:
            model[p] = (a, f"{p}:{a}{s}")
        else:
            model.pop(p, None)


def best(model: Model, *, bids: bool, depth: int | None = None) -> list[int]:
    prices = sorted(model, reverse=bids)
    return prices if depth is None else prices[:depth]


@settings(max_examples=200, deadline=None)
@given(
    snapshot=st.tuples(st.lists(CHANGE, max_size=30), st.lists(CHANGE, max_size=30)),
    messages=st.lists(
        st.tuples(st.lists(CHANGE, max_size=6), st.lists(CHANGE, max_size=6)), max_size=20
    ),
    depth=st.none() | st.integers(1, 12),
    reads=st.lists(st.integers(0, 15), min_size=1, max_size=3),
)
def test_book_matches_a_dict_model(
    snapshot: tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]],
    messages: list[tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]],
    depth: int | None,
    reads: list[int],
) -> None:
    book = WireBook()
    bids: Model = {}
    asks: Model = {}
    apply(bids, snapshot[0])
    apply(asks, snapshot[1])
    book.load(wire_levels(snapshot[0]), wire_levels(snapshot[1]))
    for bid_changes, ask_changes in [((), ()), *messages]:
        book.apply(wire_levels(list(bid_changes)), wire_levels(list(ask_changes)))
        apply(bids, list(bid_changes))
        apply(asks, list(ask_changes))
        if depth is not None:
            book.truncate(depth)
            for model, is_bid in ((bids, True), (asks, False)):
                for price in best(model, bids=is_bid)[depth:]:
                    del model[price]
        for n in reads:  # reads of several sizes exercise the top cache
            assert book.top_bids(n) == tuple(
                Level(p, bids[p][0]) for p in best(bids, bids=True)[:n]
            )
            assert book.top_asks(n) == tuple(
                Level(p, asks[p][0]) for p in best(asks, bids=False)[:n]
            )
            assert list(book.bids.wires(n)) == [bids[p][1] for p in best(bids, bids=True)[:n]]
            assert list(book.asks.wires(n)) == [asks[p][1] for p in best(asks, bids=False)[:n]]
        assert book.bids_dict() == {p: a for p, (a, _) in bids.items()}
        assert book.asks_dict() == {p: a for p, (a, _) in asks.items()}
        assert book.depth == (len(bids), len(asks))
    book.clear()
    assert book.top(5) == ((), ())


def test_truncating_below_a_cached_read_drops_it() -> None:
    book = WireBook()
    book.load([(p, 1, f"{p}") for p in range(1, 21)], [(p, 1, f"{p}") for p in range(21, 41)])
    assert len(book.top_bids(15)) == 15 and len(book.top_asks(15)) == 15
    assert len(book.bids.wires(15)) == 15
    book.truncate(10)
    assert book.top_bids(15) == tuple(Level(p, 1) for p in range(20, 10, -1))
    assert book.top_asks(15) == tuple(Level(p, 1) for p in range(21, 31))
    assert list(book.bids.wires(15)) == [str(p) for p in range(20, 10, -1)]
