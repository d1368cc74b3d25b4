"""Exact fixed-point numbers for prices and amounts.

Venues send prices and amounts as decimal strings. Books key levels by price, so
the representation must make equal strings equal (``"0.35210000" == "0.3521"``)
and order exactly; binary floats cannot (``0.1 + 0.2`` style surprises, and two
different strings may round to the same double). ``decimal.Decimal`` is exact to
parse and compare, but its arithmetic rounds to a thread-local context (28 digits
by default), keeps non-canonical forms (``str`` of ``"0.35210000"`` keeps the
zeros) and sorts about twice as slowly as an ``int``.

So a value is a plain Python ``int`` counting units of ``10**-SCALE``: equal
decimals are the same int, comparison, hashing and subtraction (the spread) are
exact integer operations with no context, and ints never overflow. Parsing is a
few string checks plus one ``int()`` call: slower than the C ``Decimal``
constructor (see docs/performance.md) but paid once per wire value, while books
and the merge compare and hash the values many times. ``SCALE`` = 18 covers every
venue (they publish at most 8 decimals); a string with more fractional digits is
rejected rather than rounded, so nothing is ever silently altered. Values become
doubles only at the edge, for clients (``to_float`` is correctly rounded).
"""

from __future__ import annotations

import re
from typing import Final

from dragonflybot.errors import DecodeError

SCALE: Final = 18
ONE: Final = 10**SCALE
_POW10: Final[tuple[int, ...]] = tuple(10 ** (SCALE - n) for n in range(SCALE + 1))
_TOO_PRECISE: Final = re.compile(rf"[0-9]+\.[0-9]{{{SCALE + 1},}}", re.ASCII)

Fixed = int
"""A decimal value as an integer number of ``10**-SCALE`` units."""


def parse(text: str) -> Fixed:
    """Parse a non-negative decimal string such as ``"0.35210000"`` or ``"12"``.

    Accepts ``digits[.digits]`` with ASCII digits only: no sign, exponent,
    whitespace, underscore, ``NaN`` or ``inf`` — a venue never sends those for a
    price or amount, so seeing one means the frame is malformed. Raises
    ``DecodeError`` naming the bad value.
    """
    # One isascii() makes isdigit() mean [0-9] (alone it also accepts "²"), and
    # isdigit() rejects what int() would quietly accept (" 1", "1_0", "+1").
    if text.isascii():
        whole, dot, frac = text.partition(".")
        if whole.isdigit():
            try:
                if not dot:
                    return int(whole) * ONE
                n = len(frac)
                if n <= SCALE and frac.isdigit():
                    return int(whole + frac) * _POW10[n]
            except ValueError:
                # int() refuses more than sys.get_int_max_str_digits() digits.
                raise DecodeError(f"decimal {_shown(text)!r} has too many digits") from None
    raise DecodeError(_why(text))


def _shown(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _why(text: str) -> str:
    shown = _shown(text)
    if _TOO_PRECISE.fullmatch(text):
        return f"decimal {shown!r} has more than {SCALE} fractional digits"
    return f"not a non-negative decimal number: {shown!r}"


def to_float(value: Fixed) -> float:
    """Correctly rounded conversion for clients (int / int true division rounds once)."""
    return value / ONE


def to_str(value: Fixed) -> str:
    """Canonical decimal string (no trailing zeros), e.g. for logs and simulators.

    Negative values (a crossed spread is one) print with a leading ``-``; only
    non-negative strings are valid input to ``parse``.
    """
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), ONE)
    if frac == 0:
        return f"{sign}{whole}"
    digits = str(frac).rjust(SCALE, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"
