from __future__ import annotations

from dragonflybot.fix.symbols import instrument_for_symbol


def test_canonical_and_compact_forms_name_the_same_instrument() -> None:
    served = {"ethbtc", "btcusdt"}
    assert instrument_for_symbol("ETH-BTC", served) == "ethbtc"
    assert instrument_for_symbol("eth-btc", served) == "ethbtc"
    assert instrument_for_symbol("ethbtc", served) == "ethbtc"
    assert instrument_for_symbol("BTC-USDT", served) == "btcusdt"


def test_anything_else_is_unknown() -> None:
    served = {"ethbtc"}
    for symbol in ("ETHBTC", "ETH/BTC", "ETH-BTC-X", "", "ETH-USD", "-", "e\x00th-btc"):
        assert instrument_for_symbol(symbol, served) is None
