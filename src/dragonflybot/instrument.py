"""Canonical instrument names: ``BASE-QUOTE`` (``ETH-BTC``), and the compact forms users type.

Every layer names an instrument canonically: configuration, logs, metrics labels and
the client. Each venue maps the canonical instrument to its own symbol
(``VenueSpec.symbol``: Binance ``ETHBTC``, Bitstamp ``ethbtc``, Kraken ``ETH/BTC``, OKX
``ETH-BTC``). The compact form (``ethbtc``, as ``--instrument-name`` and older files
write it) is split on the known quote assets; a name that splits more than one way is
an error naming the choices, never a guess.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from dragonflybot.errors import ConfigError

QUOTE_ASSETS: Final = (
    "USDT",
    "USDC",
    "FDUSD",
    "TUSD",
    "BUSD",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "AUD",
    "CAD",
    "CHF",
    "TRY",
    "BRL",
    "BTC",
    "XBT",
    "ETH",
    "BNB",
    "SOL",
)
"""Assets instruments are quoted in on the supported venues (for splitting compact names)."""

_ASSET: Final = re.compile(r"[A-Z0-9]{1,16}")
_SEPARATORS: Final = re.compile(r"[-/_]")


class Instrument(NamedTuple):
    """An instrument as ``(base, quote)``, both upper-case assets."""

    base: str
    quote: str

    @property
    def name(self) -> str:
        """The canonical name, ``ETH-BTC``."""
        return f"{self.base}-{self.quote}"

    @property
    def compact(self) -> str:
        """The lower-case compact form, ``ethbtc``."""
        return f"{self.base}{self.quote}".lower()

    def __str__(self) -> str:
        return self.name


def parse_instrument(text: str) -> Instrument:
    """``ETH-BTC``, ``eth-btc``, ``ETH/BTC``, ``eth_btc`` or compact ``ethbtc`` -> ``Instrument``.

    Raises ``ConfigError`` for an empty or malformed name, or a compact name that does
    not split on a known quote asset or splits more than one way (naming the choices).
    """
    upper = text.strip().upper()
    parts = _SEPARATORS.split(upper)
    if len(parts) == 2:
        base, quote = parts
        if _ASSET.fullmatch(base) and _ASSET.fullmatch(quote):
            return Instrument(base, quote)
        raise ConfigError(f"instrument {text!r}: BASE-QUOTE must be letters/digits, e.g. ETH-BTC")
    if len(parts) != 1 or not _ASSET.fullmatch(upper) or len(upper) < 2:
        raise ConfigError(f"instrument {text!r} must be BASE-QUOTE (e.g. ETH-BTC) or compact")
    choices = [
        Instrument(upper[: -len(quote)], quote)
        for quote in QUOTE_ASSETS
        if upper.endswith(quote) and len(upper) > len(quote)
    ]
    if not choices:
        raise ConfigError(
            f"instrument {text!r}: no known quote asset at its end; write it as BASE-QUOTE "
            "(e.g. ETH-BTC)"
        )
    if len(choices) > 1:
        names = " or ".join(c.name for c in choices)
        raise ConfigError(f"instrument {text!r} is ambiguous: {names}; write it as BASE-QUOTE")
    return choices[0]


def canonical(text: str) -> str:
    """The canonical ``BASE-QUOTE`` name of ``text`` (see ``parse_instrument``)."""
    return parse_instrument(text).name
