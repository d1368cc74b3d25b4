"""The single list of venues: name -> ``VenueSpec``, one entry per venue module.

Adding a venue is its protocol module (which defines its ``SPEC``), its simulated
venue under ``sim/`` (which the spec names) and one entry here. The mapping is
immutable (``MappingProxyType`` over a dict built once at import): there is no
registration call, so no import order or test can change which venues exist. Code
that must run with other venues (tests registering a fake venue) takes a ``venues``
mapping parameter whose default is ``VENUES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dragonflybot.config import VenueConfig
from dragonflybot.errors import ConfigError
from dragonflybot.venues import binance, bitstamp, bybit, coinbase, kraken, okx
from dragonflybot.venues.base import VenueProtocol
from dragonflybot.venues.spec import ProtocolFactory, VenueSpec

__all__ = ["VENUES", "ProtocolFactory", "VenueSpec", "create_protocol", "lookup", "venue_map"]

VENUES: Mapping[str, VenueSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (binance.SPEC, bitstamp.SPEC, coinbase.SPEC, bybit.SPEC, kraken.SPEC, okx.SPEC)
    }
)


def venue_map(*specs: VenueSpec) -> Mapping[str, VenueSpec]:
    """An immutable venue mapping of ``specs`` (for callers running other venues)."""
    return MappingProxyType({spec.name: spec for spec in specs})


def lookup(name: str, venues: Mapping[str, VenueSpec] = VENUES) -> VenueSpec:
    """The venue called ``name``; ``ConfigError`` naming the known venues otherwise."""
    try:
        return venues[name]
    except KeyError:
        known = ", ".join(sorted(venues))
        raise ConfigError(f"unknown venue {name!r} (known: {known})") from None


def create_protocol(
    config: VenueConfig, instrument: str, venues: Mapping[str, VenueSpec] = VENUES
) -> VenueProtocol:
    """A fresh protocol object for ``config.name`` trading ``instrument``."""
    return lookup(config.name, venues).create(config, instrument)
