"""Canonical instrument names: BASE-QUOTE, and the compact forms split on known quotes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.config import AppConfig, InstrumentConfig, check_config
from dragonflybot.errors import ConfigError
from dragonflybot.instrument import (
    MAX_NAME_LENGTH,
    QUOTE_ASSETS,
    Instrument,
    canonical,
    parse_instrument,
    resolve_served,
)
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


SERVED = frozenset({"ETH-BTC", "BTC-USDT", "ETH-BUSD"})


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ETH-BTC", "ETH-BTC"),
        ("eth-btc", "ETH-BTC"),
        ("ETH/BTC", "ETH-BTC"),
        ("ethbtc", "ETH-BTC"),
        ("ETHBTC", "ETH-BTC"),
        ("btcusdt", "BTC-USDT"),
        ("ethbusd", "ETH-BUSD"),  # ambiguous compact, but only one split is served
    ],
)
def test_a_served_instrument_is_found_by_any_spelling(text: str, name: str) -> None:
    assert resolve_served(text, SERVED) == name


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "ETH-USD",
        "eth--btc",
        "eth-",
        " ethbtc",
        "eth btc",
        "éth-btc",
        "e\x00th-btc",
        "ETH-BTC-X",
        "a" * (MAX_NAME_LENGTH + 1),
        "eth\nbtc",
    ],
)
def test_anything_else_off_the_wire_names_nothing(text: str) -> None:
    assert resolve_served(text, SERVED) is None


def test_two_served_splits_of_one_compact_name_are_not_guessed() -> None:
    assert resolve_served("ethbusd", {"ETH-BUSD", "ETHB-USD"}) is None
    assert resolve_served("ETHB-USD", {"ETH-BUSD", "ETHB-USD"}) == "ETHB-USD"


@given(st.text(max_size=80))
def test_any_text_resolves_to_a_served_name_or_none(text: str) -> None:
    assert resolve_served(text, SERVED) in SERVED | {None}


@given(assets, st.sampled_from(QUOTE_ASSETS), st.sampled_from(["-", "/", "_"]), st.booleans())
def test_a_served_name_resolves_whatever_its_case_and_separator(
    base: str, quote: str, sep: str, lower: bool
) -> None:
    name = f"{base}-{quote}"
    text = f"{base}{sep}{quote}"
    assert resolve_served(text.lower() if lower else text, {name}) == name
