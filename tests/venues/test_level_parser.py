"""LevelParser: a memo in front of ``parse`` must never change what is accepted or its value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.core.fixed import SCALE, parse
from dragonflybot.errors import DecodeError
from dragonflybot.venues.base import LevelParser, parse_levels

decimals = st.from_regex(rf"[0-9]{{1,12}}(\.[0-9]{{1,{SCALE}}})?", fullmatch=True)
anything = decimals | st.text(max_size=12)


@given(st.lists(st.tuples(decimals, decimals), max_size=30), st.integers(1, 3))
def test_same_values_as_parse_first_and_every_later_time(
    raw: list[tuple[str, str]], times: int
) -> None:
    parser = LevelParser()
    want = [(parse(price), parse(amount)) for price, amount in raw]
    for _ in range(times):
        assert parser(raw) == want
    assert parser.snapshot(raw) == want


@given(st.lists(st.tuples(anything, anything), min_size=1, max_size=10))
def test_accepts_exactly_what_parse_accepts_even_after_seeing_valid_values(
    raw: list[tuple[str, str]],
) -> None:
    parser = LevelParser()
    valid = [(p, a) for p, a in raw if _ok(p) and _ok(a)]
    parser(valid)  # remembers the good ones
    if len(valid) == len(raw):
        assert parser(raw) == parse_levels(raw)
    else:
        with pytest.raises(DecodeError):
            parser(raw)
        with pytest.raises(DecodeError):
            parse_levels(raw)


def _ok(text: str) -> bool:
    try:
        parse(text)
    except DecodeError:
        return False
    return True


@pytest.mark.parametrize("bad", ["1e5", "-1", " 1", "1.", ".5", "\uff11", "0." + "1" * (SCALE + 1)])
def test_a_bad_value_is_rejected_every_time(bad: str) -> None:
    parser = LevelParser()
    for _ in range(2):
        with pytest.raises(DecodeError):
            parser([("1.5", bad)])
        with pytest.raises(DecodeError):
            parser([(bad, "0")])
    assert parser.remembered() == ["1.5"]  # parsed before the bad value was met


def test_the_memo_is_bounded_and_keeps_prices_and_zero_amounts_only() -> None:
    parser = LevelParser()
    parser([("1.5", "0.00000000"), ("2.5", "7.25"), ("9" * 50, "0")])
    assert set(parser.remembered()) == {"1.5", "0.00000000", "2.5", "0"}
    for start in range(0, LevelParser.LIMIT * 2, 1000):
        parser([(str(i), "1") for i in range(start, start + 1000)])
        assert len(parser) <= LevelParser.LIMIT


def test_a_snapshot_seeds_the_prices_of_its_best_levels_only() -> None:
    parser = LevelParser()
    raw = [(f"{i}.5", "3") for i in range(LevelParser.SEEDED + 10)]
    assert parser.snapshot(raw) == parse_levels(raw)
    assert set(parser.remembered()) == {price for price, _ in raw[: LevelParser.SEEDED]}
