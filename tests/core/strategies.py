"""Hypothesis strategies shared by the core tests.

Prices come from a small grid on purpose: equal prices across venues and equal
(price, amount) pairs must be common, not lucky, for the tie rules to be tested.
"""

from __future__ import annotations

from hypothesis import strategies as st

from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import ONE

TICK = ONE // 100

prices = st.one_of(
    st.integers(min_value=1, max_value=60).map(lambda n: n * TICK),
    st.integers(min_value=1, max_value=10**30),
)
amounts = st.one_of(
    st.sampled_from([ONE, 2 * ONE, 5 * ONE // 10]),
    st.integers(min_value=1, max_value=10**24),
)


@st.composite
def sides(draw: st.DrawFn, *, descending: bool, max_size: int = 50) -> Side:
    """A valid best-first side: distinct prices, positive amounts."""
    chosen = draw(st.sets(prices, max_size=max_size))
    ordered = sorted(chosen, reverse=descending)
    return tuple(Level(price, draw(amounts)) for price in ordered)
