"""Venue name -> how to build its protocol. Adding a venue is one module plus one line here.

The mapping is immutable (``MappingProxyType`` over a dict built once at import):
there is no registration call, so no import order or test can change which
venues exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs

from dragonflybot.config import VenueConfig
from dragonflybot.errors import ConfigError
from dragonflybot.venues import binance, bitstamp
from dragonflybot.venues.base import VenueProtocol

ProtocolFactory = Callable[[VenueConfig, str], VenueProtocol]
"""``(venue config, instrument name) -> protocol``."""


@attrs.frozen
class VenueSpec:
    """What the rest of the program needs to know about a venue before connecting."""

    name: str
    default_ws_url: str
    default_rest_url: str
    create: ProtocolFactory


VENUES: Mapping[str, VenueSpec] = MappingProxyType(
    {
        binance.NAME: VenueSpec(
            binance.NAME,
            binance.DEFAULT_WS_URL,
            binance.DEFAULT_REST_URL,
            binance.BinanceProtocol.from_config,
        ),
        bitstamp.NAME: VenueSpec(
            bitstamp.NAME,
            bitstamp.DEFAULT_WS_URL,
            bitstamp.DEFAULT_REST_URL,
            bitstamp.BitstampProtocol.from_config,
        ),
    }
)


def lookup(name: str) -> VenueSpec:
    """The venue called ``name``; ``ConfigError`` naming the known venues otherwise."""
    try:
        return VENUES[name]
    except KeyError:
        known = ", ".join(sorted(VENUES))
        raise ConfigError(f"unknown venue {name!r} (known: {known})") from None


def create_protocol(config: VenueConfig, instrument: str) -> VenueProtocol:
    """A fresh protocol object for ``config.name`` trading ``instrument``."""
    return lookup(config.name).create(config, instrument)
