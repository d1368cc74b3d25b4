"""``--metrics-listen`` and ``--log-format`` as a user runs them: real processes and sockets."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from dragonflybot.config import decode_config
from dragonflybot.errors import ConfigError
from dragonflybot.venues.registry import VENUES

from .test_entrypoints import Proc, run, script


def scrape_until(url: str, wanted: str, timeout: float = 20.0) -> str:
    """The first exposition text containing ``wanted`` (bounded, not timed)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(url, timeout=5).text
        if wanted in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{wanted!r} never appeared in:\n{text}")


def test_server_serves_metrics_and_logs_json_lines() -> None:
    proc = Proc(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    )
    try:
        port = int(proc.wait_for_line(r'"metrics_port":(\d+)')[1])
        proc.wait_for_line(r"live venues: " + ", ".join(sorted(VENUES)))
        url = f"http://127.0.0.1:{port}/metrics"
        text = scrape_until(
            url, 'dragonflybot_feed_state{instrument="ETH-BTC",state="live",venue="bitstamp"} 1.0'
        )
        assert (
            'dragonflybot_feed_frames_received_total{instrument="ETH-BTC",venue="binance"}' in text
        )
        assert "dragonflybot_latency_receive_to_merged_seconds_bucket" in text
        proc.popen.send_signal(signal.SIGTERM)
        code, _, stderr = proc.finish()
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
    assert code == 0
    events = [json.loads(line) for line in stderr.splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(events[0])
    started = [e for e in events if "metrics_port" in e]
    assert started[0]["msg"] == f"metrics on http://127.0.0.1:{port}/metrics"
    live = [e for e in events if e.get("live") == sorted(VENUES)]
    assert live and live[0]["instrument"] == "ETH-BTC"
    assert any(e["msg"] == "SIGTERM received: shutting down" for e in events)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_metrics_port_is_one_line_and_exit_2(taken_port: int) -> None:
    result = run(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        f"127.0.0.1:{taken_port}",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"dragonflybot-grpc-server: error: cannot serve metrics on 127.0.0.1:{taken_port}: "
        "address already in use"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-listen", "9090"], "argument --metrics-listen: bad listen address '9090'"),
        (["--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
        (
            ["--listen", "127.0.0.1:50999", "--metrics-listen", "127.0.0.1:50999"],
            "metrics_listen: 127.0.0.1:50999 is already used by the gRPC API (listen)",
        ),
    ],
)
def test_bad_observability_flags_are_usage_errors(args: list[str], message: str) -> None:
    result = run(script("dragonflybot-grpc-server"), "--instrument-name", "ethbtc", *args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_demo_reports_its_metrics_address() -> None:
    result = run(
        script("dragonflybot"),
        "demo",
        "--duration",
        "1",
        "--format",
        "json",
        "--metrics-listen",
        "127.0.0.1:0",
        "--log-level",
        "INFO",
        "--log-format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    shown = [line for line in lines if line.startswith("demo: metrics on http://127.0.0.1:")]
    assert len(shown) == 1
    events = [json.loads(line) for line in lines if not line.startswith("demo: ")]
    ports = [e["metrics_port"] for e in events if "metrics_port" in e]
    assert shown[0] == f"demo: metrics on http://127.0.0.1:{ports[0]}/metrics"


def test_the_config_file_takes_both_keys() -> None:
    config = decode_config(
        'metrics_listen = "127.0.0.1:9464"\nlog_format = "json"\n[[instruments]]\nname = "ethbtc"\n'
    )
    assert config.metrics_listen == "127.0.0.1:9464"
    assert config.log_format == "json"
    with pytest.raises(ConfigError, match=r"metrics_listen: bad listen address"):
        decode_config('metrics_listen = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"log_format"):
        decode_config('log_format = "xml"\n')
