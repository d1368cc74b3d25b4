"""Canonical instrument names: BASE-QUOTE, and the compact forms split on known quotes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.config import AppConfig, InstrumentConfig, check_config
from dragonflybot.errors import ConfigError
from dragonflybot.instrument import QUOTE_ASSETS, Instrument, canonical, parse_instrument
from dragonflybot.venues import binance, bitstamp


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ETH-BTC", "ETH-BTC"),
        ("eth-btc", "ETH-BTC"),
        ("ETH/BTC", "ETH-BTC"),
        ("eth_btc", "ETH-BTC"),
        ("ethbtc", "ETH-BTC"),
        ("btcusdt", "BTC-USDT"),
        ("xrpeur", "XRP-EUR"),
        ("BTCUSD", "BTC-USD"),
    ],
)
def test_every_spelling_has_one_canonical_name(text: str, name: str) -> None:
    assert canonical(text) == name


def test_an_ambiguous_compact_name_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"ambiguous: ETH-BUSD or ETHB-USD"):
        parse_instrument("ethbusd")


@pytest.mark.parametrize("text", ["", "x", "foobar", "ETH-", "ETH-BTC-USD", "eth btc", "é-btc"])
def test_bad_names_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_instrument(text)


assets = st.from_regex(r"[A-Z][A-Z0-9]{1,7}", fullmatch=True)


@given(assets, st.sampled_from(QUOTE_ASSETS))
def test_canonical_round_trips_and_venue_symbols_follow(base: str, quote: str) -> None:
    instrument = Instrument(base, quote)
    assert parse_instrument(instrument.name) == instrument
    assert parse_instrument(f"{base}/{quote}".lower()) == instrument
    compact = instrument.compact
    try:
        split = parse_instrument(compact)
    except ConfigError as exc:
        assert "ambiguous" in str(exc) and instrument.name in str(exc)
    else:
        assert split == instrument
    assert binance.SPEC.symbol(instrument.name) == (base + quote)
    assert bitstamp.SPEC.symbol(instrument.name) == (base + quote).lower()


def test_config_makes_names_canonical_and_catches_the_same_book_twice() -> None:
    config = check_config(AppConfig(instruments=[InstrumentConfig(name="ethbtc")]))
    assert config.instruments[0].name == "ETH-BTC"
    with pytest.raises(ConfigError, match=r"instruments\[1\]\.name.*'ETH-BTC' appears twice"):
        check_config(
            AppConfig(
                instruments=[
                    InstrumentConfig(name="ethbtc", listen="127.0.0.1:1"),
                    InstrumentConfig(name="ETH/BTC", listen="127.0.0.1:2"),
                ]
            )
        )
    with pytest.raises(ConfigError, match=r"instruments\[0\]\.name: .*ambiguous"):
        check_config(AppConfig(instruments=[InstrumentConfig(name="ethbusd")]))
