"""Small builders shared by the bus tests."""

from __future__ import annotations

from collections.abc import Callable

import trio
from hypothesis import strategies as st

from dragonflybot.bus.codec import DownMsg, ViewMsg, wire_levels
from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import ONE, parse


def view_msg(venue: str = "binance", instrument: str = "BTC-USDT", bid: str = "100.5") -> ViewMsg:
    bids = wire_levels([(parse(bid), parse("1.25")), (parse(bid) - parse("0.5"), parse("2"))])
    asks = wire_levels([(parse(bid) + parse("0.5"), parse("3"))])
    return ViewMsg(venue, instrument, bids, asks, 42, 1_700_000_000_000, 1_700_000_000_000_000_000)


def down_msg(venue: str = "binance", instrument: str = "BTC-USDT") -> DownMsg:
    return DownMsg(venue, instrument, "disconnected")


async def wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll a plain value (a counter, a flag) that has no event to wait on, with a deadline."""
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the value itself
            await trio.sleep(0.01)


_prices = st.one_of(
    st.integers(min_value=1, max_value=60).map(lambda n: n * (ONE // 100)),
    st.integers(min_value=1, max_value=10**30),
)
_amounts = st.integers(min_value=1, max_value=10**24)


@st.composite
def sides(draw: st.DrawFn, *, descending: bool, max_size: int = 10) -> Side:
    """A valid best-first side: distinct prices, positive amounts (as in tests/core)."""
    chosen = sorted(draw(st.sets(_prices, max_size=max_size)), reverse=descending)
    return tuple(Level(price, draw(_amounts)) for price in chosen)
