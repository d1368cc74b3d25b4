"""Flags over a config file: selection, overrides, and errors that name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragonflybot.cli.options import build_config
from dragonflybot.cli.server import build_parser, config_from_args
from dragonflybot.config import SimulationConfig, load_config
from dragonflybot.errors import ConfigError

FILE = """
depth = 7
[[venues]]
name = "binance"
mode = "depth"
stale_after = 3.0
[[instruments]]
name = "ethbtc"
listen = "127.0.0.1:6001"
[[instruments]]
name = "btcusdt"
listen = "127.0.0.1:6002"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "app.toml"
    path.write_text(FILE)
    return str(path)


def test_flags_alone_make_a_one_instrument_config() -> None:
    args = build_parser().parse_args(
        ["--instrument-name", "ETHBTC", "--venues", "bitstamp", "--depth", "3", "--simulate"]
    )
    config = config_from_args(args)
    (inst,) = config.instruments
    assert (inst.name, inst.depth, inst.listen) == ("ETH-BTC", 3, None)
    assert inst.venues is not None and [v.name for v in inst.venues] == ["bitstamp"]
    assert config.simulation == SimulationConfig()


def test_instrument_name_selects_from_the_file_and_keeps_its_settings(config_file: str) -> None:
    config = build_config(
        config_path=config_file,
        instrument="btcusdt",
        venues=("binance",),
        depth=None,
        listen="127.0.0.1:0",
        simulate=False,
        log_level="DEBUG",
    )
    (inst,) = config.instruments
    assert (inst.name, inst.listen, config.listen) == ("BTC-USDT", None, "127.0.0.1:0")
    # The venue picked by name keeps the file's settings for it.
    assert inst.venues is not None and inst.venues[0].stale_after == 3.0
    assert inst.venues[0].mode == "depth"
    assert (config.depth, config.log_level, config.simulation) == (7, "DEBUG", None)


def test_listen_sets_the_api_address_and_instruments_keep_their_own(config_file: str) -> None:
    config = build_config(
        config_path=config_file,
        instrument=None,
        venues=None,
        depth=None,
        listen="127.0.0.1:0",
        simulate=False,
        log_level=None,
    )
    assert config.listen == "127.0.0.1:0"
    assert [i.listen for i in config.instruments] == [
        i.listen for i in load_config(config_file).instruments
    ]


def test_depth_applies_to_every_selected_instrument(config_file: str) -> None:
    config = build_config(
        config_path=config_file,
        instrument=None,
        venues=None,
        depth=4,
        listen=None,
        simulate=True,
        log_level=None,
    )
    assert [i.depth for i in config.instruments] == [4, 4]
    assert config.simulation is not None


def test_no_instrument_anywhere_is_an_error() -> None:
    with pytest.raises(ConfigError, match="missing instrument"):
        build_config(
            config_path=None,
            instrument=None,
            venues=None,
            depth=None,
            listen=None,
            simulate=False,
            log_level=None,
        )


def test_client_max_rate_flag_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rate.toml"
    path.write_text('max_client_rate = 50.0\n[[instruments]]\nname = "ethbtc"\n')
    from_file = config_from_args(build_parser().parse_args(["--config", str(path)]))
    assert from_file.max_client_rate == 50.0
    args = build_parser().parse_args(["--config", str(path), "--client-max-rate", "120"])
    assert config_from_args(args).max_client_rate == 120.0
    plain = config_from_args(build_parser().parse_args(["--instrument-name", "ethbtc"]))
    assert plain.max_client_rate == 0.0
