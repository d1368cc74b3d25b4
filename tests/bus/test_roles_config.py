"""The roles' configuration and flags: ``[bus]``, ``--venues``, ``--bus``; bus metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from dragonflybot.app import App
from dragonflybot.app_roles import Role, Roles, bus_config, run_roles
from dragonflybot.cli.roles import aggregate_main, feed_main
from dragonflybot.cli.server import main as server_main
from dragonflybot.config import AppConfig, BusSettings, InstrumentConfig, decode_config
from dragonflybot.errors import ConfigError

from .redis_servers import RedisServer


def test_bus_table_defaults_and_values() -> None:
    assert decode_config("").bus is None
    config = decode_config('[bus]\nurl = "redis://h:7000/2"\nstale_after = 6\n')
    assert config.bus == BusSettings(url="redis://h:7000/2", stale_after=6.0)
    bus = bus_config(config.bus)
    assert (bus.host, bus.port, bus.db, bus.names.prefix) == ("h", 7000, 2, "dfb")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[bus]\nstale_after = 1.0\nheartbeat_interval = 1.0\n", "bus.heartbeat_interval"),
        ("[bus]\nstale_after = 1.5\nrefresh_after = 2.0\n", "bus.refresh_after"),
        ("[bus]\nstale_after = 0\n", "bus.stale_after"),
        ('[bus]\nprefix = "a b"\n', "bus.prefix"),
        ("[bus]\nheartbeat = 1\n", "bus.heartbeat"),
    ],
)
def test_bad_bus_values_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\b{key}\b"):
        decode_config(text)


def test_a_bad_bus_url_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"bus\.url.*scheme"):
        bus_config(BusSettings(url="http://h:1"))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return str(path)


def test_feed_venues_must_be_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, '[[instruments]]\nname = "ETH-BTC"\n[[venues]]\nname = "binance"\n')
    assert feed_main(["--config", config, "--venues", "bitstamp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--venues: bitstamp not in any instrument's venues (binance)" in err


def test_role_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, '[[instruments]]\nname = "ETH-BTC"\n')
    assert server_main(["--config", config, "--bus", "--simulate"]) == 2
    assert "a gateway (--bus) has none" in capsys.readouterr().err
    assert aggregate_main(["--config", config, "--bus", "ftp://x"]) == 2
    assert "bus.url" in capsys.readouterr().err
    # The depths are the file's: the feeds publish views as deep as it says.
    for flag in ("--depth", "--liquidity-depth"):
        assert server_main(["--config", config, "--bus", flag, "20"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{flag} with --bus" in err


async def test_a_gateway_without_publishers_is_up_on_the_bus_and_not_serving(
    redis: RedisServer,
) -> None:
    config = AppConfig(instruments=[InstrumentConfig(name="ETH-BTC", listen="127.0.0.1:0")])
    roles = Roles(frozenset({Role.SERVE}), BusSettings(url=redis.url, prefix="t"))
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_roles(config, roles, task_status=task_status)
        )
        runtime = app.instruments["ETH-BTC"]
        with trio.fail_after(10):
            while True:
                if _sample(app, "dragonflybot_bus_up", side="subscriber", instrument="ETH-BTC"):
                    break
                await trio.sleep(0.02)
        assert runtime.publisher.serving.latest() is False
        assert (
            _sample(
                app, "dragonflybot_bus_reconnects_total", side="subscriber", instrument="ETH-BTC"
            )
            == 0
        )
        assert _sample(app, "dragonflybot_bus_latest_reads_total", instrument="ETH-BTC") == 1
        app.shutdown()


def _sample(app: App, name: str, **labels: str) -> float:
    value = app.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value
