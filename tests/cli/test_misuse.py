"""Misuse of every console script, as a user commits it: one line, exit 2, no traceback.

Each case runs the installed console script as a subprocess (what a user runs),
plus ``--version`` on every entrypoint, ``dragonflybot health``, and the server
pointed at a standalone ``dragonflybot sim`` with ``--venue-url`` while the client
follows an instrument through dragonflybot.v1.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from dragonflybot.venues.registry import VENUES

from .test_entrypoints import Proc, free_port, run, script

MISUSE = {
    "client: negative --connect-timeout": (
        ["dragonflybot-grpc-client", "--connect-timeout", "-1"],
        "argument --connect-timeout: bad duration -1",
    ),
    "client: NaN --connect-timeout": (
        ["dragonflybot-grpc-client", "--connect-timeout", "nan"],
        "argument --connect-timeout: bad duration nan",
    ),
    "client: bogus --log-level": (
        ["dragonflybot-grpc-client", "--log-level", "bogus"],
        "argument --log-level: invalid choice: 'BOGUS'",
    ),
    "client: negative --count": (["dragonflybot-grpc-client", "--count", "-1"], "count"),
    "demo: negative --duration": (
        ["dragonflybot", "demo", "--duration", "-5"],
        "argument --duration: bad duration -5",
    ),
    "demo: NaN --duration": (
        ["dragonflybot", "demo", "--duration", "nan"],
        "argument --duration: bad duration nan",
    ),
    "demo: bogus --log-level": (
        ["dragonflybot", "demo", "--log-level", "bogus"],
        "argument --log-level: invalid choice: 'BOGUS'",
    ),
    "demo: --rate 0": (["dragonflybot", "demo", "--rate", "0"], "argument --rate: bad rate 0"),
    "demo: --depth 251": (["dragonflybot", "demo", "--depth", "251"], "expected 1-250"),
    "server: --depth 251": (
        ["dragonflybot-grpc-server", "--instrument", "ETH-BTC", "--depth", "251"],
        "expected 1-250",
    ),
    "sim: --depth 0": (["dragonflybot", "sim", "--depth", "0"], "expected 1-5000"),
    "sim: --depth 5001": (["dragonflybot", "sim", "--depth", "5001"], "expected 1-5000"),
    "server: bad --venue-url": (
        ["dragonflybot-grpc-server", "--instrument", "ETH-BTC", "--venue-url", "binance"],
        "expected NAME=URL",
    ),
    "server: --venue-url of an unknown venue": (
        ["dragonflybot-grpc-server", "--instrument", "ETH-BTC", "--venue-url", "x=ws://h:1"],
        "unknown venue 'x'",
    ),
    "server: --venue-url of an unused venue": (
        [
            "dragonflybot-grpc-server",
            "--instrument",
            "ETH-BTC",
            "--venues",
            "binance",
            "--venue-url",
            "bitstamp=ws://127.0.0.1:1",
        ],
        "'bitstamp' is not a venue of the served instruments",
    ),
    "health: bad --server": (["dragonflybot", "health", "--server", "nowhere"], "bad listen"),
    "record: --count 0": (
        [
            *("dragonflybot", "record", "--venue", "binance", "--instrument", "ETH-BTC"),
            *("-o", "x", "--count", "0"),
        ],
        "bad count 0",
    ),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_misuse_is_one_line_and_exit_2(case: str) -> None:
    argv, message = MISUSE[case]
    result = run(script(argv[0]), *argv[1:])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and message in lines[0], lines


def test_an_unknown_venue_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "venues.toml"
    path.write_text('[[instruments]]\nname = "ETH-BTC"\n[[venues]]\nname = "krakenx"\n')
    result = run(script("dragonflybot-grpc-server"), "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dragonflybot-grpc-server: error: {path}: venues[0].name: unknown venue 'krakenx' "
        f"(known: {', '.join(sorted(VENUES))})"
    ]


def test_an_ipv6_address_keeps_its_brackets() -> None:
    port = free_port()
    result = run(
        script("dragonflybot-grpc-client"), "--server", f"[::1]:{port}", "--connect-timeout", "2"
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"dragonflybot-grpc-client: error: cannot connect to [::1]:{port}: ")


def test_sim_names_the_port_it_cannot_listen_on() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(script("dragonflybot"), "sim", "--port-binance", str(port))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dragonflybot sim: error: binance WebSocket: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    ]


def test_record_that_cannot_connect_says_error_and_leaves_no_file(tmp_path: Path) -> None:
    output = tmp_path / "capture.cap"
    port = free_port()
    result = run(
        script("dragonflybot"),
        "record",
        "--venue",
        "binance",
        "--instrument",
        "ETH-BTC",
        "-o",
        str(output),
        "--ws-url",
        f"ws://127.0.0.1:{port}/stream",
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("dragonflybot record: error: cannot connect")
    assert not output.exists()
    # An existing capture (appended to) is left exactly as it was.
    output.write_bytes(b"earlier capture")
    again = run(
        script("dragonflybot"),
        "record",
        "--venue",
        "binance",
        "--instrument",
        "ETH-BTC",
        "-o",
        str(output),
        "--ws-url",
        f"ws://127.0.0.1:{port}/stream",
    )
    assert again.returncode == 1
    assert output.read_bytes() == b"earlier capture"


@pytest.mark.parametrize(
    "argv",
    [
        ["dragonflybot"],
        ["dragonflybot", "demo"],
        ["dragonflybot", "server"],
        ["dragonflybot", "client"],
        ["dragonflybot", "health"],
        ["dragonflybot", "sim"],
        ["dragonflybot", "record"],
        ["dragonflybot", "feed"],
        ["dragonflybot", "aggregate"],
        ["dragonflybot-grpc-server"],
        ["dragonflybot-grpc-client"],
    ],
)
def test_every_entrypoint_has_version(argv: list[str]) -> None:
    result = run(script(argv[0]), *argv[1:], "--version")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"dragonflybot[\w -]* \d+\.\d+\S*\n", result.stdout), result.stdout


def test_help_shows_defaults_and_no_markup() -> None:
    for argv in (
        ["dragonflybot", "demo"],
        ["dragonflybot-grpc-server"],
        ["dragonflybot-grpc-client"],
        ["dragonflybot", "sim"],
    ):
        text = run(script(argv[0]), *argv[1:], "--help").stdout
        assert "``" not in text, argv
        assert "default" in text
    demo = run(script("dragonflybot"), "demo", "--help").stdout
    for flag in ("--seed", "--depth", "--rate", "--instrument", "--duration"):
        block = demo.split(f"\n  {flag}", 1)[1].split("\n  -", 1)[0]
        assert "default" in block, flag


def test_server_on_a_standalone_sim_via_venue_url_health_and_a_v1_client() -> None:
    sim = Proc(script("dragonflybot"), "sim", "--venue", "binance", "--venue", "bitstamp")
    server: Proc | None = None
    try:
        urls = {}
        for _ in range(2):
            line = sim.stdout.get(timeout=20)
            venue, ws_url, rest_url = line.strip().split("\t")
            urls[venue] = (ws_url.removeprefix("ws_url="), rest_url.removeprefix("rest_url="))
        flags = [
            f
            for venue, (ws, rest) in urls.items()
            for f in ("--venue-url", f"{venue}={ws}", "--venue-url", f"{venue}={rest}")
        ]
        server = Proc(
            script("dragonflybot-grpc-server"),
            "--instrument",
            "ETH-BTC",
            "--venues",
            "binance,bitstamp",  # the venues the sim runs (the default is every venue)
            "--listen",
            "127.0.0.1:0",
            *flags,
        )
        port = int(server.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)")[1])
        server.wait_for_line(r"live venues: binance, bitstamp")
        health = run(script("dragonflybot"), "health", "--server", f"127.0.0.1:{port}")
        assert (health.returncode, health.stdout) == (0, "SERVING\n"), health.stderr
        unknown = run(
            script("dragonflybot"), "health", "--server", f"127.0.0.1:{port}", "--service", "x.Y"
        )
        assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
        client = run(
            script("dragonflybot-grpc-client"),
            "--server",
            f"127.0.0.1:{port}",
            "--instrument",
            "ethbtc",
            "--count",
            "3",
            "--format",
            "json",
        )
        assert client.returncode == 0, client.stderr
        books = [json.loads(line) for line in client.stdout.splitlines()]
        assert len(books) == 3
        assert {b["instrument"] for b in books} == {"ETH-BTC"}
        sequences = [b["sequence"] for b in books]
        assert sequences == sorted(sequences) and sequences[0] >= 1
        assert all(b["publish_time"] and b["receive_time"] for b in books)
        assert {v["name"] for v in books[-1]["venues"]} == {"binance", "bitstamp"}
        table = run(
            script("dragonflybot-grpc-client"),
            "--server",
            f"127.0.0.1:{port}",
            "--instrument",
            "ETH-BTC",
            "--count",
            "2",
            "--format",
            "table",
        )
        assert table.returncode == 0, table.stderr
        assert f"ETH-BTC @ 127.0.0.1:{port}" in table.stdout and "binance live" in table.stdout
        refused = run(
            script("dragonflybot-grpc-client"),
            "--server",
            f"127.0.0.1:{port}",
            "--instrument",
            "BTC-USDT",
            "--count",
            "1",
        )
        assert refused.returncode == 2
        (line,) = refused.stderr.splitlines()
        assert "NOT_FOUND" in line and "ETH-BTC" in line
    finally:
        for proc in (server, sim):
            if proc is not None and proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGINT)
                proc.finish()


def test_a_dead_server_is_not_serving_for_health() -> None:
    port = free_port()
    result = run(script("dragonflybot"), "health", "--server", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"dragonflybot health: error: cannot connect to 127.0.0.1:{port}: Connection refused"
    ]


def test_health_is_exit_1_while_no_venue_is_live() -> None:
    dead = free_port()
    server = Proc(
        script("dragonflybot-grpc-server"),
        "--instrument",
        "ETH-BTC",
        "--venues",
        "binance",
        "--venue-url",
        f"binance=ws://127.0.0.1:{dead}/stream",
        "--listen",
        "127.0.0.1:0",
    )
    try:
        port = int(server.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)")[1])
        for service in ("", "dragonflybot.v1.BookService", "orderbook.OrderbookAggregator"):
            result = run(
                script("dragonflybot"),
                "health",
                "--server",
                f"127.0.0.1:{port}",
                "--service",
                service,
            )
            assert (result.returncode, result.stdout) == (1, "NOT_SERVING\n"), result.stderr
    finally:
        server.popen.send_signal(signal.SIGINT)
        assert server.finish()[0] == 0
