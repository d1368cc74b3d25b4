from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service.instrument_names import MAX_NAME_LENGTH, instrument_key


def test_canonical_and_compact_names_are_one_instrument() -> None:
    keys = {instrument_key(n) for n in ("ETH-BTC", "eth-btc", "ethbtc", "ETHBTC", "eth/btc")}
    assert keys == {"ETHBTC"}
    assert instrument_key("BTC-USDT") != instrument_key("ETH-BTC")


def test_malformed_names_have_no_key() -> None:
    for bad in ("", "-", "eth--btc", "eth-", " ethbtc", "eth btc", "éth", "a" * 65, "eth\nbtc"):
        assert instrument_key(bad) is None, bad


letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


@given(letters, letters, st.sampled_from(["-", "/", "_", ""]), st.booleans())
def test_the_key_ignores_case_and_separator(base: str, quote: str, sep: str, upper: bool) -> None:
    name = f"{base}{sep}{quote}"
    name = name.upper() if upper else name
    assert instrument_key(name) == f"{base}{quote}".upper()


@given(st.text(max_size=80))
def test_any_text_gives_a_clean_key_or_none(text: str) -> None:
    key = instrument_key(text)
    if key is not None:
        assert key.isascii() and key.isalnum() and key == key.upper()
        assert len(key) <= MAX_NAME_LENGTH
