"""The aggregated-liquidity ladder and cost to trade, against brute-force references."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE, parse
from dragonflybot.core.liquidity import (
    Ladder,
    TradeSide,
    VenueAmount,
    build_ladder,
    cost_to_trade,
    format_number,
    format_ratio,
)
from dragonflybot.core.view import VenueView

from .strategies import amounts, sides


def view(
    venue: str, bids: tuple[tuple[str, str], ...], asks: tuple[tuple[str, str], ...]
) -> VenueView:
    return VenueView(
        venue,
        tuple(Level(parse(p), parse(a)) for p, a in bids),
        tuple(Level(parse(p), parse(a)) for p, a in asks),
        None,
        0,
    )


A = view("binance", (("10", "1"), ("9", "2")), (("11", "1"), ("12", "3")))
B = view("bitstamp", (("10", "0.5"), ("8", "4")), (("11", "2"), ("13", "1")))


def test_ladder_sums_each_price_across_venues_and_names_them() -> None:
    ladder = build_ladder([A, B], 10)
    assert [(lv.price, lv.amount) for lv in ladder.bids] == [
        (10 * ONE, parse("1.5")),
        (9 * ONE, 2 * ONE),
        (8 * ONE, 4 * ONE),
    ]
    assert ladder.bids[0].venues == (
        VenueAmount("binance", ONE),
        VenueAmount("bitstamp", parse("0.5")),
    )
    assert [lv.price for lv in ladder.asks] == [11 * ONE, 12 * ONE, 13 * ONE]
    assert ladder.asks[0].amount == 3 * ONE
    assert ladder.mid() == Fraction(21 * ONE, 2)


def test_ladder_depth_counts_prices_not_venue_levels() -> None:
    ladder = build_ladder([A, B], 1)
    assert len(ladder.bids) == 1 and len(ladder.asks) == 1
    assert ladder.bids[0].amount == parse("1.5")
    assert build_ladder([], 5) == Ladder.empty()
    assert Ladder.empty().mid() is None


def test_buy_walks_the_asks_across_venues() -> None:
    cost = cost_to_trade([A, B], TradeSide.BUY, parse("4"))
    assert cost.filled
    assert cost.taken == 4 * ONE
    assert cost.available == 7 * ONE
    # 3 @ 11 (bitstamp 2 first: larger amount), then 1 @ 12 from binance.
    assert cost.vwap == Fraction(3 * 11 + 12, 4) * ONE
    assert cost.worst_price == 12 * ONE
    assert cost.by_venue == (VenueAmount("binance", 2 * ONE), VenueAmount("bitstamp", 2 * ONE))
    assert cost.mid == Fraction(21, 2) * ONE
    assert cost.slippage == (Fraction(45, 4) - Fraction(21, 2)) * ONE
    assert format_ratio(cost.vwap) == "11.25"
    assert cost.slippage_bps is not None
    assert format_number(cost.slippage_bps) == format_number(
        Fraction(3, 4) * 10_000 / Fraction(21, 2)
    )


def test_sell_partial_fill_reports_what_is_available() -> None:
    cost = cost_to_trade([A, B], TradeSide.SELL, parse("100"))
    assert not cost.filled
    assert cost.available == cost.taken == parse("7.5")
    assert cost.worst_price == 8 * ONE
    assert cost.slippage is not None and cost.slippage > 0


def test_empty_side_has_no_price() -> None:
    only_bids = view("binance", (("10", "1"),), ())
    cost = cost_to_trade([only_bids], TradeSide.BUY, ONE)
    assert not cost.filled and cost.available == 0 and cost.taken == 0
    assert cost.vwap is None and cost.worst_price is None and cost.mid is None
    assert cost.slippage is None and cost.slippage_bps is None and cost.by_venue == ()
    with pytest.raises(ValueError):
        cost_to_trade([A], TradeSide.BUY, 0)
    with pytest.raises(ValueError):
        build_ladder([A], -1)


def test_format_ratio_rounds_half_even_at_the_last_fixed_digit() -> None:
    assert format_ratio(Fraction(1, 3)) == "0"
    assert format_ratio(Fraction(ONE, 3)) == "0.333333333333333333"
    assert format_ratio(Fraction(5, 2)) == "0.000000000000000002"


VENUES = ("binance", "bitstamp", "kraken", "okx")


@st.composite
def view_sets(draw: st.DrawFn) -> list[VenueView]:
    names = draw(st.lists(st.sampled_from(VENUES), unique=True, max_size=4))
    return [
        VenueView(
            name,
            draw(sides(descending=True, max_size=12)),
            draw(sides(descending=False, max_size=12)),
            None,
            0,
        )
        for name in names
    ]


@given(view_sets(), st.integers(min_value=0, max_value=30))
def test_ladder_totals_equal_the_sum_of_the_venue_books(views: list[VenueView], depth: int) -> None:
    ladder = build_ladder(views, depth)
    for levels, pick, descending in (
        (ladder.bids, lambda v: v.bids, True),
        (ladder.asks, lambda v: v.asks, False),
    ):
        every_price = sorted({lv.price for v in views for lv in pick(v)}, reverse=descending)
        assert [lv.price for lv in levels] == every_price[:depth]
        for level in levels:
            held = {v.venue: lv.amount for v in views for lv in pick(v) if lv.price == level.price}
            assert level.amount == sum(held.values())
            assert dict(level.venues) == held
            assert [v for v, _ in level.venues] == sorted(held)


def brute_force_walk(
    views: list[VenueView], side: TradeSide, quantity: int
) -> tuple[int, int, dict[str, int], int | None]:
    """Every venue level in one list, sorted by the merge's rule, taken in order."""
    rows = [
        (lv.price, lv.amount, v.venue)
        for v in views
        for lv in (v.asks if side is TradeSide.BUY else v.bids)
    ]
    sign = 1 if side is TradeSide.BUY else -1
    rows.sort(key=lambda r: (sign * r[0], -r[1], r[2]))
    left, notional, worst = quantity, 0, None
    per_venue: dict[str, int] = {}
    for price, amount, venue in rows:
        if not left:
            break
        take = min(left, amount)
        left -= take
        notional += take * price
        worst = price
        per_venue[venue] = per_venue.get(venue, 0) + take
    return quantity - left, notional, per_venue, worst


@given(view_sets(), st.sampled_from(TradeSide), amounts)
def test_cost_to_trade_equals_a_brute_force_walk(
    views: list[VenueView], side: TradeSide, quantity: int
) -> None:
    cost = cost_to_trade(views, side, quantity)
    taken, notional, per_venue, worst = brute_force_walk(views, side, quantity)
    assert cost.taken == taken
    assert cost.filled == (taken == quantity)
    assert cost.worst_price == worst
    assert cost.vwap == (Fraction(notional, taken) if taken else None)
    assert dict(cost.by_venue) == per_venue
    assert cost.available == sum(
        lv.amount for v in views for lv in (v.asks if side is TradeSide.BUY else v.bids)
    )
    if cost.vwap is not None and worst is not None:
        # The average never lies beyond the worst price reached.
        assert (cost.vwap <= worst) if side is TradeSide.BUY else (cost.vwap >= worst)
