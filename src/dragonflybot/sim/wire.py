"""Decimal strings as the venues print them, from ``core.fixed`` ints.

Binance prints every price and amount with 8 decimals (``"0.05012000"``); Bitstamp prints
prices with the pair's precision and amounts with 8. Formatting dominates the cost of
rendering a top-N book, and a book reuses few distinct prices and amounts, so strings are
cached per formatter.
"""

from __future__ import annotations

from typing import Final

from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE, SCALE, Fixed

_CACHE_LIMIT: Final = 50_000


def format_fixed(value: Fixed, decimals: int) -> str:
    """``value`` with exactly ``decimals`` digits after the point (no rounding: a value
    that does not fit is a bug in the simulator, not something to hide)."""
    whole, frac = divmod(value, ONE)
    unit = 10 ** (SCALE - decimals)
    digits, rest = divmod(frac, unit)
    if rest or value < 0:
        raise ValueError(f"{value} does not fit {decimals} decimals")
    if decimals == 0:
        return str(whole)
    return f"{whole}.{digits:0{decimals}d}"


class LevelFormatter:
    """Formats ``[price, amount]`` pairs, caching the strings of recent values."""

    __slots__ = ("_amount_decimals", "_amounts", "_price_decimals", "_prices")

    def __init__(self, price_decimals: int, amount_decimals: int = 8) -> None:
        self._price_decimals = price_decimals
        self._amount_decimals = amount_decimals
        self._prices: dict[Fixed, str] = {}
        self._amounts: dict[Fixed, str] = {}

    def price(self, value: Fixed) -> str:
        text = self._prices.get(value)
        if text is None:
            if len(self._prices) > _CACHE_LIMIT:
                self._prices.clear()
            text = self._prices[value] = format_fixed(value, self._price_decimals)
        return text

    def amount(self, value: Fixed) -> str:
        text = self._amounts.get(value)
        if text is None:
            if len(self._amounts) > _CACHE_LIMIT:
                self._amounts.clear()
            text = self._amounts[value] = format_fixed(value, self._amount_decimals)
        return text

    def levels(self, levels: tuple[Level, ...]) -> list[tuple[str, str]]:
        price, amount = self.price, self.amount
        return [(price(p), amount(a)) for p, a in levels]
