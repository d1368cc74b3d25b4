"""App-level configuration: TOML -> Structs, errors name the key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dragonflybot.app import default_feeds
from dragonflybot.config import (
    AppConfig,
    VenueConfig,
    decode_config,
    load_config,
    parse_listen,
)
from dragonflybot.errors import ConfigError
from dragonflybot.venues.registry import VENUES

TWO = b"""
depth = 5
log_level = "DEBUG"

[[venues]]
name = "binance"
mode = "diff"

[[venues]]
name = "bitstamp"
stale_after = 3.5

[[instruments]]
name = "ethbtc"
listen = "127.0.0.1:50051"

[[instruments]]
name = "btcusdt"
listen = "[::1]:50052"
depth = 20
venues = [{ name = "binance", symbol = "BTCUSDT" }]
"""


def test_a_full_file_decodes() -> None:
    config = decode_config(TWO)
    assert config.depth == 5
    assert [v.name for v in config.venues] == ["binance", "bitstamp"]
    assert config.venues[0].mode == "depth"
    assert config.venues[1].stale_after == 3.5
    eth, btc = config.instruments
    assert (eth.name, eth.listen, eth.depth, eth.venues) == (
        "ETH-BTC",
        "127.0.0.1:50051",
        None,
        None,
    )
    assert btc.depth == 20
    assert btc.venues is not None and btc.venues[0].symbol == "BTCUSDT"


def test_empty_file_means_defaults() -> None:
    config = decode_config(b"")
    assert config == AppConfig()
    assert config.venues is None  # every registered venue
    assert [v.name for v in default_feeds(config)] == list(VENUES)
    assert config.instruments == []


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour = 1", "colour: unknown key"),
        ('[[instruments]]\nname = "ethbtc"\nport = 1', "instruments[0].port: unknown key"),
        ('[[venues]]\nname = "binance"\nmod = "diff"', "venues[0].mod: unknown key"),
        ('depth = "ten"', "depth: Expected `int`, got `str`"),
        ("depth = 0", "depth: Expected `int` >= 1"),
        ('log_level = "LOUD"', "log_level: Invalid enum value 'LOUD'"),
        ('[[venues]]\nname = "binance"\nmode = "fast"', "venues[0].mode: Invalid enum value"),
        ('[[venues]]\nname = "binance"\nstale_after = -1', "venues[0].stale_after"),
        (
            '[[instruments]]\nname = "ethbtc"\nlisten = "nowhere"',
            "instruments[0].listen: bad listen",
        ),
        ('[[instruments]]\nname = "a b"', "instruments[0].name"),
        (
            '[[instruments]]\nname = "ethbtc"\n[[instruments]]\nname = "ethbtc"',
            "instruments[1].name",
        ),
        (
            '[[instruments]]\nname = "ethbtc"\nlisten = "127.0.0.1:7001"\n'
            '[[instruments]]\nname = "btcusdt"\nlisten = "127.0.0.1:7001"',
            "instruments[1].listen",
        ),
        ('listen = "127.0.0.1:7001"\nmetrics_listen = "127.0.0.1:7001"', "metrics_listen"),
        ('listen = "nowhere"', "listen"),
        (
            '[fix]\nlisten = "127.0.0.1:50051"\n[[instruments]]\nname = "ethbtc"',
            "fix.listen",
        ),
        ('[[venues]]\nname = "binance"\n[[venues]]\nname = "binance"', "venues[1].name"),
        ("[simulation]\nrate = 0", "simulation.rate"),
        ("max_client_rate = -1", "max_client_rate: Expected `float` >= 0"),
        ("depth = [", "not valid TOML"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_config(text)
    assert key in str(info.value)


def test_load_config_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_bytes(TWO)
    assert len(load_config(good).instruments) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("depth = -3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: depth"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text", ["", "50051", ":50051", "host:", "host:x", "host:70000", "::1:80", "a b:1", "[]:1"]
)
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="bad listen address"):
        parse_listen(text)


def test_old_mode_names_still_work_with_a_deprecation_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = b"""
[[venues]]
name = "binance"
mode = "snapshot"

[[instruments]]
name = "ethbtc"
venues = [{ name = "bitstamp", mode = "diff" }]
"""
    with caplog.at_level(logging.WARNING, logger="dragonflybot.config"):
        config = decode_config(text, source="old.toml")
    assert config.venues is not None and config.venues[0].mode == "top"
    inst_venues = config.instruments[0].venues
    assert inst_venues is not None and inst_venues[0].mode == "depth"
    messages = [r.getMessage() for r in caplog.records]
    assert any("old.toml: venues[0].mode" in m and "'top'" in m for m in messages)
    assert any("instruments[0].venues[0].mode" in m and "'depth'" in m for m in messages)
    # Python callers passing the old names get the same treatment.
    assert VenueConfig(name="binance", mode="diff").mode == "depth"  # type: ignore[arg-type]


def test_unknown_mode_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"venues\[0\]\.mode"):
        decode_config(b'[[venues]]\nname = "binance"\nmode = "full"')


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            '[[instruments]]\nname = "ETH-BTC"\n[[venues]]\nname = "bybit"\ndepth = 7',
            "venues[0]: bybit: depth must be one of 1, 50, 200, 1000, got 7",
        ),
        (
            '[[instruments]]\nname = "ETH-BTC"\n'
            '[[instruments.venues]]\nname = "binance"\n[[instruments.venues]]\nname = "bybit"\n'
            "depth = 3",
            "instruments[0].venues[1]: bybit: depth must be one of",
        ),
    ],
)
def test_what_only_a_venue_knows_is_checked_before_anything_starts(text: str, key: str) -> None:
    """A depth Bybit does not publish is a config error at start, not a feed that drops out."""
    from dragonflybot.app import plan_topology

    with pytest.raises(ConfigError) as info:
        plan_topology(decode_config(text))
    assert key in str(info.value)
