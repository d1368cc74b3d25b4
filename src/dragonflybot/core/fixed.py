"""Exact fixed-point numbers for prices and amounts.

Venues send prices and amounts as decimal strings. Books key levels by price, so
the representation must make equal strings equal (``"0.35210000" == "0.3521"``)
and order exactly; binary floats cannot (``0.1 + 0.2`` style surprises, and two
different strings may round to the same double). ``decimal.Decimal`` is exact but
several times slower to hash and compare than an ``int``.

So a value is a plain Python ``int`` counting units of ``10**-SCALE``: parsing is
one ``int()`` call plus a table lookup, comparison and hashing are integer
operations, and Python ints never overflow. ``SCALE`` = 18 covers every venue
(they publish at most 8 decimals); a string with more fractional digits is
rejected rather than rounded, so nothing is ever silently altered. Values become
doubles only at the edge, for clients (``to_float`` is correctly rounded).
"""

from __future__ import annotations

from typing import Final

from dragonflybot.errors import DecodeError

SCALE: Final = 18
ONE: Final = 10**SCALE
_POW10: Final = tuple(10 ** (SCALE - n) for n in range(SCALE + 1))
_DIGITS: Final = frozenset("0123456789")

Fixed = int
"""A decimal value as an integer number of ``10**-SCALE`` units."""


def parse(text: str) -> Fixed:
    """Parse a non-negative decimal string such as ``"0.35210000"`` or ``"12"``.

    Accepts ``digits[.digits]`` only: no sign, exponent, whitespace, ``NaN`` or
    ``inf`` — a venue never sends those for a price or amount, so seeing one means
    the frame is malformed. Raises ``DecodeError`` naming the bad value.
    """
    whole, dot, frac = text.partition(".")
    if not whole or (dot and not frac) or len(frac) > SCALE:
        raise DecodeError(_why(text))
    # str.isdigit accepts non-ASCII digits such as "²"; check ASCII explicitly.
    if not (whole.isascii() and whole.isdigit() and (not frac or (frac.isascii() and frac.isdigit()))):
        raise DecodeError(_why(text))
    if frac:
        return int(whole + frac) * _POW10[len(frac)]
    return int(whole) * ONE


def _why(text: str) -> str:
    shown = text if len(text) <= 40 else text[:40] + "..."
    if "." in text and len(text.partition(".")[2]) > SCALE and set(text) <= _DIGITS | {"."}:
        return f"decimal {shown!r} has more than {SCALE} fractional digits"
    return f"not a non-negative decimal number: {shown!r}"


def to_float(value: Fixed) -> float:
    """Correctly rounded conversion for clients (int / int true division rounds once)."""
    return value / ONE


def to_str(value: Fixed) -> str:
    """Canonical decimal string (no trailing zeros), e.g. for logs and simulators."""
    whole, frac = divmod(value, ONE)
    if frac == 0:
        return str(whole)
    digits = str(frac).rjust(SCALE, "0").rstrip("0")
    return f"{whole}.{digits}"

