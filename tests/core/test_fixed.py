"""Fixed-point parsing must agree exactly with ``decimal.Decimal`` and reject anything else."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dragonflybot.core.fixed import ONE, SCALE, parse, to_float, to_str
from dragonflybot.errors import DecodeError

WELL_FORMED = re.compile(rf"[0-9]+(\.[0-9]{{1,{SCALE}}})?", re.ASCII)


@st.composite
def decimal_strings(draw: st.DrawFn) -> str:
    """Well-formed venue-style decimals: leading/trailing zeros, huge integer parts."""
    whole = draw(st.integers(min_value=0, max_value=10**40))
    leading = "0" * draw(st.integers(min_value=0, max_value=3))
    text = f"{leading}{whole}"
    if draw(st.booleans()):
        frac = draw(st.text(alphabet="0123456789", min_size=1, max_size=SCALE))
        trailing = "0" * draw(st.integers(min_value=0, max_value=SCALE - len(frac)))
        text += "." + frac + trailing
    return text


def exact(text: str) -> Decimal:
    return Decimal(text)


def units(value: int) -> Decimal:
    """The exact decimal a fixed-point int stands for."""
    with localcontext() as ctx:
        ctx.prec = 200
        return Decimal(value).scaleb(-SCALE)


@given(decimal_strings())
@example("0.35210000")
@example("0")
@example("000.000")
@example("1." + "0" * (SCALE - 1) + "1")
def test_parse_is_exact(text: str) -> None:
    assert units(parse(text)) == exact(text)


@given(decimal_strings(), decimal_strings())
@example("0.35210000", "0.3521")
@example("10", "9.999999999999999999")
@example("007", "7.0")
def test_order_and_equality_agree_with_decimal(a: str, b: str) -> None:
    x, y = parse(a), parse(b)
    da, db = exact(a), exact(b)
    assert (x == y) == (da == db)
    assert (x < y) == (da < db)
    assert (x > y) == (da > db)
    if x == y:
        assert hash(x) == hash(y)


@given(decimal_strings())
def test_to_str_round_trips_canonically(text: str) -> None:
    value = parse(text)
    shown = to_str(value)
    assert parse(shown) == value
    assert exact(shown) == exact(text)
    # Canonical: no redundant zeros, so equal values print identically.
    assert not shown.endswith("0") or "." not in shown
    assert not shown.endswith(".")
    assert shown == "0" or not shown.startswith("0") or shown.startswith("0.")


@given(st.integers(min_value=-(10**40), max_value=10**40))
@example(-1)
@example(-ONE)
@example(-ONE - 1)
def test_to_str_of_any_fixed_value(value: int) -> None:
    """Differences such as a crossed spread are negative and must print correctly too."""
    assert exact(to_str(value)) == units(value)
    if value >= 0:
        assert parse(to_str(value)) == value
    else:
        assert parse(to_str(-value)) == -value


@given(decimal_strings())
@example("0.1")
@example("9007199254740993")  # 2**53 + 1: needs round-half-even to 2**53
@example("0.300000000000000016")  # halfway-ish cases expose double rounding
def test_to_float_is_correctly_rounded(text: str) -> None:
    assert to_float(parse(text)) == float(exact(text))


@given(st.integers(min_value=-(10**40), max_value=10**40))
def test_to_float_of_any_fixed_value(value: int) -> None:
    assert to_float(value) == float(units(value))


MALFORMED = [
    "",
    ".",
    "1.",
    ".5",
    "-1",
    "+1",
    "-0",
    "1e5",
    "1E5",
    "NaN",
    "nan",
    "inf",
    "Infinity",
    " 1",
    "1 ",
    "1\n",
    "1_000",
    "1,5",
    "1.2.3",
    "0x10",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: int() accepts it, a venue never sends it
    "1.\u0665",
    "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is True for it
    "\uff11",  # FULLWIDTH DIGIT ONE
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_strings_are_rejected_by_name(text: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse(text)
    assert repr(text) in str(info.value)
    assert "not a non-negative decimal number" in str(info.value)


def test_too_many_fractional_digits_is_rejected_not_rounded() -> None:
    text = "0." + "1" * (SCALE + 1)
    with pytest.raises(DecodeError, match=f"more than {SCALE} fractional digits"):
        parse(text)
    assert parse("0." + "1" * SCALE) * 10 == int("1" * SCALE) * 10


@pytest.mark.parametrize("text", ["9" * 5000, "1." + "0" * 5000, "9" * 5000 + ".5"])
def test_absurdly_long_numbers_are_decode_errors(text: str) -> None:
    """int() raises ValueError past its digit limit; untrusted input must get DecodeError."""
    with pytest.raises(DecodeError) as info:
        parse(text)
    assert len(str(info.value)) < 100


def test_long_bad_value_is_shortened_in_the_message() -> None:
    text = "x" * 1000
    with pytest.raises(DecodeError) as info:
        parse(text)
    assert len(str(info.value)) < 100


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=24) | st.from_regex(r"[0-9.]{0,24}"))
@example("1.2.3" + "4" * 20)
def test_accepts_exactly_the_documented_grammar(text: str) -> None:
    """digits[.digits] with at most SCALE fractional digits, ASCII only; anything else errs."""
    if WELL_FORMED.fullmatch(text):
        assert units(parse(text)) == exact(text)
    else:
        with pytest.raises(DecodeError):
            parse(text)
