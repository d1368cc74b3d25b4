"""Kraken's book checksum: CRC32 over the best 10 asks then the best 10 bids.

One algorithm serves both protocol versions; only where a level's digits come from
differs (``shared/venues.md`` 4.4):

* v1 sends fixed-width decimal strings and the digits are that exact string with
  the ``.`` removed and leading zeros stripped (``v1_token``);
* v2 sends JSON numbers and the digits are the value written with the pair's
  ``price_precision`` / ``qty_precision`` decimals, the same removal and stripping
  (``v2_token``), which is the value scaled by ``10**precision`` as an integer.

A level's token is its price digits followed by its quantity digits; the book
keeps that token per level (``core.book.WireLevel``'s text), so a checksum is one join
and one ``zlib.crc32``. The recorded v1 traffic verifies ``checksum`` itself;
v1 and v2 tokens agree whenever the v1 strings are as wide as the precision,
which the tests hold on recorded and generated books.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

from dragonflybot.core.fixed import SCALE, Fixed
from dragonflybot.errors import DecodeError

LEVELS: Final = 10
"""Levels per side the checksum covers."""
MAX_PRECISION: Final = SCALE
"""More decimals than a ``Fixed`` holds cannot be formatted exactly."""


def v1_digits(text: str) -> str:
    """A v1 wire string as the checksum writes it: no ``.``, no leading zeros."""
    return text.replace(".", "").lstrip("0")


def v1_token(price: str, qty: str) -> str:
    return v1_digits(price) + v1_digits(qty)


def scale_unit(precision: int) -> int:
    """The ``Fixed`` value of one unit in the last of ``precision`` decimals."""
    if not 0 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must be 0..{MAX_PRECISION}, got {precision}")
    unit: int = 10 ** (SCALE - precision)
    return unit


def v2_digits(value: Fixed, unit: int) -> str:
    """``value`` written with the decimals ``unit`` stands for, no ``.``, no leading zeros.

    Raises ``DecodeError`` when the value has more decimals than that: the pair's
    precision no longer describes the feed, and no formatting of it can give the
    venue's checksum.
    """
    scaled, rest = divmod(value, unit)
    if rest:
        raise DecodeError(f"value {value} has more decimals than the pair's precision")
    return str(scaled) if scaled else ""


def v2_token(price: Fixed, qty: Fixed, price_unit: int, qty_unit: int) -> str:
    return v2_digits(price, price_unit) + v2_digits(qty, qty_unit)


def checksum(ask_tokens: Sequence[str], bid_tokens: Sequence[str]) -> int:
    """CRC32 (unsigned) of the best asks' tokens then the best bids' tokens.

    Callers pass at most ``LEVELS`` tokens per side, best first; fewer when the
    side is shorter.
    """
    return zlib.crc32(("".join(ask_tokens) + "".join(bid_tokens)).encode())
