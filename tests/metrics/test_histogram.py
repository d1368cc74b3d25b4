"""The hot-path latency histogram: Prometheus ``le`` buckets from plain counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.metrics import LATENCY_BOUNDS, LatencyHistogram


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    histogram = LatencyHistogram((0.001, 0.01))
    histogram.observe_ns(1_000_000)  # exactly 1 ms: le="0.001"
    histogram.observe_ns(1_000_001)
    histogram.observe_ns(20_000_000)
    assert histogram.counts == [1, 1, 1]
    assert histogram.cumulative() == [("0.001", 1.0), ("0.01", 2.0), ("+Inf", 3.0)]
    assert histogram.sum_ns == 22_000_001
    assert histogram.count == 3


def test_a_clock_step_backwards_counts_as_zero() -> None:
    histogram = LatencyHistogram((0.001,))
    histogram.observe_ns(-5)
    assert histogram.counts == [1, 0]
    assert histogram.sum_ns == 0


@pytest.mark.parametrize("bounds", [(), (0.0, 1.0), (0.2, 0.1), (0.1, 0.1)])
def test_bounds_must_be_positive_and_increasing(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        LatencyHistogram(bounds)


@given(st.lists(st.integers(min_value=0, max_value=10_000_000_000), max_size=50))
def test_cumulative_counts_match_a_direct_count(values: list[int]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.observe_ns(value)
    pairs = histogram.cumulative()
    assert [le for le, _ in pairs[:-1]] == [repr(b) for b in LATENCY_BOUNDS]
    for bound, (_, count) in zip(LATENCY_BOUNDS, pairs, strict=False):
        assert count == sum(1 for v in values if v <= round(bound * 1e9))
    assert pairs[-1] == ("+Inf", float(len(values)))
    assert histogram.sum_ns == sum(values)
