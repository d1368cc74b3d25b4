"""The venue registry: immutable, complete, and errors naming the known venues."""

from __future__ import annotations

import pytest

from dragonflybot.config import VenueConfig
from dragonflybot.errors import ConfigError
from dragonflybot.venues import binance, bitstamp, kraken, okx
from dragonflybot.venues.registry import VENUES, create_protocol, lookup


def test_registry_holds_the_venues_with_production_defaults() -> None:
    assert {"binance", "bitstamp", "coinbase", "bybit", "kraken", "okx"} <= set(VENUES)
    assert lookup("coinbase").default_ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert lookup("bybit").default_ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert lookup("kraken").default_ws_url == "wss://ws.kraken.com/v2"
    assert lookup("okx").default_ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert lookup("binance").default_ws_url == "wss://stream.binance.com:9443/stream"
    assert lookup("bitstamp").default_rest_url == "https://www.bitstamp.net"


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        VENUES["coinbase"] = VENUES["binance"]  # type: ignore[index]


def test_unknown_venue_names_known_ones() -> None:
    known = ", ".join(sorted(VENUES))
    with pytest.raises(ConfigError, match=rf"'nosuch'.*\(known: {known}\)"):
        lookup("nosuch")


def test_create_protocol_builds_the_venue_class() -> None:
    b = create_protocol(VenueConfig(name="binance", mode="depth"), "ethbtc")
    assert isinstance(b, binance.BinanceProtocol) and b.streams == ("ethbtc@depth@100ms",)
    s = create_protocol(VenueConfig(name="bitstamp"), "ethbtc")
    assert isinstance(s, bitstamp.BitstampProtocol) and s.streams == ("order_book_ethbtc",)
    k = create_protocol(VenueConfig(name="kraken"), "ETH-BTC")
    assert isinstance(k, kraken.KrakenProtocol) and k.streams == ("book-10:ETH/BTC",)
    assert not k.uses_rest
    o = create_protocol(VenueConfig(name="okx"), "ethbtc")
    assert isinstance(o, okx.OkxProtocol) and o.streams == ("books:ETH-BTC",)
    assert not o.uses_rest
