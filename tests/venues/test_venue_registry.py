"""The venue registry: immutable, complete, and errors naming the known venues."""

from __future__ import annotations

import pytest

from dragonflybot.config import VenueConfig
from dragonflybot.errors import ConfigError
from dragonflybot.venues import binance, bitstamp
from dragonflybot.venues.registry import VENUES, create_protocol, lookup


def test_registry_holds_the_venues_with_production_defaults() -> None:
    assert {"binance", "bitstamp", "coinbase", "bybit"} <= set(VENUES)
    assert lookup("coinbase").default_ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert lookup("bybit").default_ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert lookup("binance").default_ws_url == "wss://stream.binance.com:9443/stream"
    assert lookup("bitstamp").default_rest_url == "https://www.bitstamp.net"


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        VENUES["kraken"] = VENUES["binance"]  # type: ignore[index]


def test_unknown_venue_names_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'kraken'.*binance, bitstamp"):
        lookup("kraken")


def test_create_protocol_builds_the_venue_class() -> None:
    b = create_protocol(VenueConfig(name="binance", mode="depth"), "ethbtc")
    assert isinstance(b, binance.BinanceProtocol) and b.streams == ("ethbtc@depth@100ms",)
    s = create_protocol(VenueConfig(name="bitstamp"), "ethbtc")
    assert isinstance(s, bitstamp.BitstampProtocol) and s.streams == ("order_book_ethbtc",)
