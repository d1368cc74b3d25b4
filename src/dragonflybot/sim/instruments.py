"""Instrument parameters of the simulated market and each venue's name for an instrument.

The simulator must publish prices on a tick grid and amounts in lots, exactly as a venue's
matching engine would, so the feeds' fixed-point parsing and level keys see realistic
strings. Known instruments get plausible parameters; any other compact name (``[a-z0-9]``)
gets a generic grid so tests and demos can invent instruments freely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from dragonflybot.core.fixed import ONE, Fixed, parse
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.instrument import Instrument, parse_instrument

_NAME: Final = re.compile(r"[a-z0-9]{2,20}")

# name: (start price, tick, lot, decimals Bitstamp prints prices with)
_KNOWN: Final[Mapping[str, tuple[str, str, str, int]]] = MappingProxyType(
    {
        "ethbtc": ("0.05", "0.00001", "0.001", 8),
        "btcusdt": ("60000", "0.01", "0.00001", 2),
        "ethusdt": ("3000", "0.01", "0.0001", 2),
        "btcusd": ("60000", "1", "0.00001", 0),
        "ethusd": ("3000", "0.1", "0.0001", 1),
        "btceur": ("55000", "1", "0.00001", 0),
        "etheur": ("2800", "0.1", "0.0001", 1),
        "xrpeur": ("0.5", "0.00001", "1", 5),
    }
)
_GENERIC: Final = ("100", "0.01", "0.001", 2)


@attrs.frozen
class InstrumentSpec:
    """One instrument's price grid; all values are ``core.fixed`` ints."""

    name: str
    """The simulator's compact name (``ethbtc``): its key in ``SimHandle`` and configs."""
    start_price: Fixed
    tick: Fixed
    lot: Fixed
    price_decimals: int
    instrument: Instrument | None = None
    """``(base, quote)`` when the name splits on a known quote asset (it does for every
    real pair): a simulated venue derives its symbol from it with its ``VenueSpec.symbol``
    (``kraken.SPEC.symbol(spec.instrument.name)`` -> ``ETH/BTC``)."""


def instrument_spec(
    name: str, *, tick: str | None = None, lot: str | None = None
) -> InstrumentSpec:
    """The grid for ``name`` (compact lower-case form such as ``ethbtc``), optionally with
    another tick or lot size (decimal strings).

    Raises ``ConfigError`` for a name venues could not carry in a stream or path, or a tick
    or lot that is not a positive decimal of at most 8 places (what the venues print).
    """
    if any(sep in name for sep in "-/_"):
        name = parse_instrument(name).compact  # ETH-BTC -> ethbtc
    if not _NAME.fullmatch(name):
        raise ConfigError(f"instrument {name!r} must be 2-20 characters of [a-z0-9], e.g. 'ethbtc'")
    start, known_tick, known_lot, decimals = _KNOWN.get(name, _GENERIC)
    tick_value = _grid(name, "tick", tick or known_tick)
    lot_value = _grid(name, "lot", lot or known_lot)
    if tick is not None:
        decimals = max(decimals, len(tick.partition(".")[2].rstrip("0")))
    price = parse(start)
    return InstrumentSpec(
        name=name,
        start_price=price - price % tick_value or tick_value * 1000,
        tick=tick_value,
        lot=lot_value,
        price_decimals=decimals,
        instrument=_split(name),
    )


def _split(name: str) -> Instrument | None:
    try:
        return parse_instrument(name)
    except ConfigError:
        return None  # an invented name (tests, demos): venues use the compact name


def _grid(name: str, what: str, text: str) -> Fixed:
    try:
        value = parse(text)
    except DecodeError as exc:
        raise ConfigError(f"instrument {name!r}: {what} size {text!r}: {exc}") from exc
    if value <= 0 or value % (ONE // 10**8):
        raise ConfigError(f"instrument {name!r}: {what} size must be > 0 with at most 8 decimals")
    return value
