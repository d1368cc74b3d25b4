"""The k-way merge against a brute-force reference: sort the union with the documented rule."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.core.book import Level
from dragonflybot.core.merge import Consolidated, MergedLevel, merge
from dragonflybot.core.view import VenueView

from .strategies import sides

VENUE_NAMES = [f"venue{i:02d}" for i in range(12)] + ["binance", "bitstamp", "a", "b", "B"]


@st.composite
def venue_views(draw: st.DrawFn, max_venues: int = 12) -> list[VenueView]:
    names = draw(st.lists(st.sampled_from(VENUE_NAMES), unique=True, max_size=max_venues))
    return [
        VenueView(
            venue=name,
            bids=draw(sides(descending=True)),
            asks=draw(sides(descending=False)),
            event_time_ms=None,
            recv_ns=0,
        )
        for name in names
    ]


def bid_key(level: MergedLevel) -> tuple[int, int, str]:
    return (-level.price, -level.amount, level.venue)


def ask_key(level: MergedLevel) -> tuple[int, int, str]:
    return (level.price, -level.amount, level.venue)


def reference(views: list[VenueView], excluded: frozenset[str]) -> Consolidated:
    """Everything from every included venue, sorted by the rule (not cut to a depth)."""
    live = [view for view in views if view.venue not in excluded]
    bids = sorted((MergedLevel(v.venue, *lv) for v in live for lv in v.bids), key=bid_key)
    asks = sorted((MergedLevel(v.venue, *lv) for v in live for lv in v.asks), key=ask_key)
    spread = asks[0].price - bids[0].price if bids and asks else None
    return Consolidated(tuple(bids), tuple(asks), spread)


def cut(full: Consolidated, depth: int) -> Consolidated:
    return Consolidated(full.bids[:depth], full.asks[:depth], full.spread)


@settings(max_examples=300, deadline=None)
@given(venue_views(), st.integers(min_value=1, max_value=50), st.data())
def test_merge_matches_brute_force_reference(
    views: list[VenueView], depth: int, data: st.DataObject
) -> None:
    names = [view.venue for view in views]
    excluded = frozenset(data.draw(st.sets(st.sampled_from(names)) if names else st.just(set())))
    result = merge(views, depth, excluded)
    full = reference(views, excluded)

    assert result == cut(full, depth)
    # Depths around where sides run out are where a merge's edge cases live.
    edges = {len(side) + delta for v in views for side in (v.bids, v.asks) for delta in (-1, 0, 1)}
    for other in sorted(edges | {1, len(full.bids), len(full.asks)}):
        if other > 0:
            assert merge(views, other, excluded) == cut(full, other)

    # The same facts, checked directly rather than through the reference.
    assert [bid_key(lv) for lv in result.bids] == sorted(bid_key(lv) for lv in result.bids)
    assert [ask_key(lv) for lv in result.asks] == sorted(ask_key(lv) for lv in result.asks)
    assert all(bid_key(a) < bid_key(b) for a, b in pairwise(result.bids))
    assert all(ask_key(a) < ask_key(b) for a, b in pairwise(result.asks))

    live = {view.venue: view for view in views if view.venue not in excluded}
    assert len(result.bids) == min(depth, sum(len(v.bids) for v in live.values()))
    assert len(result.asks) == min(depth, sum(len(v.asks) for v in live.values()))
    for merged in result.bids:
        assert Level(merged.price, merged.amount) in live[merged.venue].bids
    for merged in result.asks:
        assert Level(merged.price, merged.amount) in live[merged.venue].asks

    if result.bids and result.asks:
        assert result.spread == result.asks[0].price - result.bids[0].price
    else:
        assert result.spread is None

    # Excluding a venue is the same as leaving it out; the order of views is irrelevant.
    assert merge(list(live.values()), depth) == result
    assert merge(list(reversed(views)), depth, excluded) == result


def view(venue: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> VenueView:
    return VenueView(
        venue=venue,
        bids=tuple(Level(p, a) for p, a in bids),
        asks=tuple(Level(p, a) for p, a in asks),
        event_time_ms=None,
        recv_ns=0,
    )


def test_ties_break_by_amount_then_venue_name() -> None:
    views = [
        view("c", [(10, 1)], [(11, 1)]),
        view("b", [(10, 2)], [(11, 2)]),
        view("a", [(10, 1)], [(11, 1)]),
    ]
    result = merge(views, 3)
    assert [lv.venue for lv in result.bids] == ["b", "a", "c"]
    assert [lv.venue for lv in result.asks] == ["b", "a", "c"]
    assert result.spread == 1


def test_crossed_venues_publish_a_negative_spread() -> None:
    views = [view("binance", [(105, 1)], [(106, 1)]), view("bitstamp", [(99, 1)], [(100, 1)])]
    result = merge(views, 10)
    assert result.bids[0] == MergedLevel("binance", 105, 1)
    assert result.asks[0] == MergedLevel("bitstamp", 100, 1)
    assert result.spread == -5


def test_empty_side_gives_no_spread_and_no_sentinel() -> None:
    result = merge([view("binance", [(105, 1)], [])], 10)
    assert result.bids == (MergedLevel("binance", 105, 1),)
    assert result.asks == ()
    assert result.spread is None
    assert merge([], 10) == Consolidated.empty()


def test_excluded_venue_contributes_nothing() -> None:
    views = [view("binance", [(105, 1)], [(106, 1)]), view("bitstamp", [(99, 1)], [(100, 1)])]
    result = merge(views, 10, excluded={"binance"})
    assert {lv.venue for lv in result.bids + result.asks} == {"bitstamp"}
    assert result.spread == 1
    assert merge(views, 10, excluded={"binance", "bitstamp"}) == Consolidated.empty()


def test_depth_zero_is_empty_and_negative_depth_is_an_error() -> None:
    views = [view("binance", [(105, 1)], [(106, 1)])]
    assert merge(views, 0) == Consolidated.empty()
    with pytest.raises(ValueError, match="depth"):
        merge(views, -1)


@given(venue_views(max_venues=3), st.integers(min_value=1, max_value=5))
def test_single_venue_is_its_own_top(views: list[VenueView], depth: int) -> None:
    for one in views:
        result = merge([one], depth)
        assert result.bids == tuple(MergedLevel(one.venue, *lv) for lv in one.bids[:depth])
        assert result.asks == tuple(MergedLevel(one.venue, *lv) for lv in one.asks[:depth])
