"""``[limits]``: safe defaults, TOML overrides, bad values named; the server flag."""

from __future__ import annotations

import pytest

from dragonflybot.cli.server import build_parser, config_from_args
from dragonflybot.config import LimitsConfig, decode_config
from dragonflybot.errors import ConfigError


def test_defaults_are_the_documented_ones() -> None:
    limits = decode_config("").limits
    assert limits == LimitsConfig()
    assert (limits.max_connections, limits.max_streams_per_connection) == (512, 100)
    assert (limits.max_receive_message, limits.max_header_list) == (4096, 8192)
    assert (limits.handshake_timeout, limits.idle_timeout) == (5.0, 60.0)


def test_a_limits_table_overrides_some_keys() -> None:
    limits = decode_config("[limits]\nmax_connections = 50\nidle_timeout = 5.5\n").limits
    assert limits.max_connections == 50
    assert limits.idle_timeout == 5.5
    assert limits.max_streams_per_connection == 100


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_connections = 0", "limits.max_connections"),
        ("max_receive_message = 10", "limits.max_receive_message"),
        ("control_frame_rate = -1.0", "limits.control_frame_rate"),
        ("handshake_timeout = 0", "limits.handshake_timeout"),
        ("max_stream = 3", "max_stream"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_it(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        decode_config(f"[limits]\n{text}\n")


def test_the_server_flag_sets_max_connections() -> None:
    args = build_parser().parse_args(["--instrument-name", "ethbtc", "--max-connections", "7"])
    assert config_from_args(args).limits.max_connections == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--max-connections", "0"])
