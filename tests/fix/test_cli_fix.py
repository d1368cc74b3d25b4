"""``--fix-listen`` / ``--liquidity-depth`` on the server and the demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dragonflybot.app import plan_topology
from dragonflybot.cli import demo, server
from dragonflybot.errors import ConfigError


def test_server_flags_build_the_fix_table_and_the_ladder() -> None:
    args = server.build_parser().parse_args(
        ["--instrument-name", "ethbtc", "--fix-listen", "127.0.0.1:0", "--liquidity-depth", "15"]
    )
    config = server.config_from_args(args)
    assert config.fix is not None and config.fix.listen == "127.0.0.1:0"
    assert plan_topology(config)[0].liquidity_depth == 15
    plain = server.config_from_args(server.build_parser().parse_args(["--instrument", "BTC-USDT"]))
    assert plain.fix is None and plan_topology(plain)[0].liquidity_depth is None


def test_bad_fix_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--fix-listen", "nowhere"], ["--liquidity-depth", "0"]):
        with pytest.raises(SystemExit) as exited:
            server.build_parser().parse_args(["--instrument-name", "ethbtc", *argv])
        assert exited.value.code == 2
    args = server.build_parser().parse_args(
        [
            "--instrument-name",
            "ethbtc",
            "--listen",
            "127.0.0.1:7000",
            "--fix-listen",
            "127.0.0.1:7000",
        ]
    )
    with pytest.raises(ConfigError, match=r"fix\.listen"):
        server.config_from_args(args)


def test_demo_config_serves_fix_when_asked() -> None:
    args = demo.build_parser().parse_args(["--fix-listen", "127.0.0.1:0"])
    config = demo.demo_config(args)
    assert config.fix is not None
    assert plan_topology(config)[0].liquidity_depth == 10


def test_demo_logs_the_fix_port() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dragonflybot"),
            "demo",
            "--duration",
            "1.5",
            "--format",
            "json",
            "--fix-listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"demo: FIX 4\.4 acceptor on 127\.0\.0\.1:\d+", result.stderr)
