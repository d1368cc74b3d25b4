"""Backoff invariants: bounded delays, exponential growth of the bound, reset after health."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.client import Backoff
from dragonflybot.errors import ConfigError

bases = st.floats(min_value=1e-3, max_value=30.0)
growth = st.floats(min_value=1.0, max_value=1e4)
seeds = st.integers(min_value=0, max_value=2**32)


@given(base=bases, factor=growth, seed=seeds, count=st.integers(min_value=1, max_value=200))
def test_delay_stays_within_the_exponential_bound(
    base: float, factor: float, seed: int, count: int
) -> None:
    cap = base * factor
    backoff = Backoff(base, cap, rng=random.Random(seed))
    for attempt in range(count):
        assert backoff.attempts == attempt
        delay = backoff.next_delay()
        assert 0.0 <= delay <= min(cap, base * 2.0**attempt)
        assert delay <= cap
    assert backoff.attempts == count


@given(base=bases, factor=growth, count=st.integers(min_value=1, max_value=2000))
def test_bound_doubles_until_the_cap_and_stays_there(
    base: float, factor: float, count: int
) -> None:
    cap = base * factor
    backoff = Backoff(base, cap, rng=random.Random(0))
    previous = backoff.ceiling()
    assert previous == base
    for _ in range(count):
        backoff.next_delay()
        current = backoff.ceiling()
        assert current == min(cap, previous * 2.0)
        previous = current


def test_full_jitter_uses_the_whole_range() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(7))
    for _ in range(3):
        backoff.next_delay()
    assert backoff.ceiling() == 8.0
    samples = []
    for _ in range(2000):
        samples.append(backoff.next_delay())
    assert min(samples) < 0.5
    assert max(samples) > 7.5


@given(
    seed=seeds,
    failures=st.integers(min_value=1, max_value=50),
    up_for=st.floats(min_value=0.0, max_value=500.0),
    reset_after=st.floats(min_value=0.0, max_value=120.0),
)
def test_attempts_reset_only_after_a_healthy_connection(
    seed: int, failures: int, up_for: float, reset_after: float
) -> None:
    backoff = Backoff(0.5, 30.0, reset_after=reset_after, rng=random.Random(seed))
    for _ in range(failures):
        backoff.next_delay()
    backoff.connected(0.0)
    backoff.disconnected(up_for)
    assert backoff.attempts == (0 if up_for >= reset_after else failures)


def test_disconnect_without_connect_keeps_counting() -> None:
    backoff = Backoff(1.0, 10.0, reset_after=5.0)
    backoff.next_delay()
    backoff.next_delay()
    backoff.disconnected(100.0)
    assert backoff.attempts == 2
    # A later disconnect must not measure health from a connection that already ended.
    backoff.connected(0.0)
    backoff.disconnected(1.0)
    backoff.disconnected(50.0)
    assert backoff.attempts == 2


def test_reset() -> None:
    backoff = Backoff(1.0, 10.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.ceiling() == 1.0


@given(seed=seeds)
def test_same_seed_same_schedule(seed: int) -> None:
    first = Backoff(0.1, 60.0, rng=random.Random(seed))
    second = Backoff(0.1, 60.0, rng=random.Random(seed))
    assert [first.next_delay() for _ in range(20)] == [second.next_delay() for _ in range(20)]


@pytest.mark.parametrize(
    ("base", "cap", "reset_after"),
    [(0.0, 1.0, 1.0), (-1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 2.0, -1.0), (float("nan"), 1, 1)],
)
def test_invalid_parameters(base: float, cap: float, reset_after: float) -> None:
    with pytest.raises(ConfigError):
        Backoff(base, cap, reset_after=reset_after)
