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
from collections.abc import Collection
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

MAX_NAME_LENGTH: Final = 41
"""The longest name accepted: two 16-character assets with a separator, and room to spare
(the configuration's own limit on ``instruments[].name``)."""

_ASSET: Final = re.compile(r"[A-Z0-9]{1,16}")
_WIRE_NAME: Final = re.compile(r"[A-Za-z0-9]+(?:[-/_][A-Za-z0-9]+)?", re.ASCII)
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
    choices = _splits(upper)
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


def _splits(upper: str) -> list[Instrument]:
    """Every way an upper-case compact name splits on a known quote asset."""
    return [
        Instrument(upper[: -len(quote)], quote)
        for quote in QUOTE_ASSETS
        if upper.endswith(quote) and len(upper) > len(quote)
    ]


def resolve_served(text: str, served: Collection[str]) -> str | None:
    """The served canonical name a client's ``text`` names, else ``None`` (never raises).

    For names off the wire (a gRPC request, FIX Symbol 55): the same spellings as
    ``parse_instrument`` (``ETH-BTC``, ``eth/btc``, compact ``ethbtc``), but nothing
    else: no surrounding blanks, ASCII letters and digits only, at most
    ``MAX_NAME_LENGTH`` characters, so a hostile name never reaches a log or a
    message unchecked. A compact name that splits more than one way names an
    instrument only when exactly one of its splits is served (that is no guess).
    ``served`` holds canonical names.
    """
    if not text or len(text) > MAX_NAME_LENGTH or not _WIRE_NAME.fullmatch(text):
        return None
    upper = text.upper()
    if _SEPARATORS.search(upper):
        base, quote = _SEPARATORS.split(upper)
        found = [Instrument(base, quote)] if len(base) <= 16 and len(quote) <= 16 else []
    else:
        found = [i for i in _splits(upper) if len(i.base) <= 16]
    names = [i.name for i in found if i.name in served]
    return names[0] if len(names) == 1 else None
