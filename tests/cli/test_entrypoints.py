"""The console scripts as a user runs them: real processes, real signals, real sockets."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dragonflybot.venues.registry import VENUES

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `pip install -e '.[dev]'` (make install)")
    return str(path)


class Proc:
    """A child process whose output is read by threads (so nothing blocks on a full pipe)."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout: queue.Queue[str] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.stdout.put(line)

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.stderr)}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            match = re.search(pattern, line)
            if match:
                return match

    def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        code = self.popen.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code, self._drain_stdout(), "".join(self.stderr)

    def _drain_stdout(self) -> str:
        lines = []
        while not self.stdout.empty():
            lines.append(self.stdout.get_nowait())
        return "".join(lines)


@contextmanager
def server(*extra: str) -> Iterator[tuple[Proc, int]]:
    proc = Proc(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        "127.0.0.1:0",
        *extra,
    )
    try:
        port = int(proc.wait_for_line(r"listening on 127\.0\.0\.1:(\d+)")[1])
        proc.wait_for_line(r"live venues: " + ", ".join(sorted(VENUES)))
        yield proc, port
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()


def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_server_streams_to_the_client_and_stops_cleanly_on_a_signal(signum: int) -> None:
    with server() as (proc, port):
        client = run(
            script("dragonflybot-grpc-client"),
            "--server",
            f"127.0.0.1:{port}",
            "--count",
            "3",
            "--format",
            "json",
        )
        assert client.returncode == 0, client.stderr
        books = [json.loads(line) for line in client.stdout.splitlines()]
        assert [b["n"] for b in books][-1] >= 3 and len(books) == 3
        for book in books:
            assert {lv["exchange"] for lv in book["bids"]} <= set(VENUES)
            assert len(book["bids"]) == 10 and len(book["asks"]) == 10
            assert book["spread"] == pytest.approx(
                book["asks"][0]["price"] - book["bids"][0]["price"]
            )
        proc.popen.send_signal(signum)
        code, _, stderr = proc.finish()
    assert code == 0
    assert "Traceback" not in stderr
    assert "Got exception" not in stderr
    assert f"{signal.Signals(signum).name} received: shutting down" in stderr


def test_a_client_stream_ends_with_the_shutdown_status() -> None:
    with server() as (proc, port):
        client = Proc(
            script("dragonflybot-grpc-client"), "--server", f"127.0.0.1:{port}", "--format", "json"
        )
        client.stdout.get(timeout=20)
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.finish()[0] == 0
        code, _, stderr = client.finish()
    assert code == 1
    assert stderr.strip().splitlines() == [
        "dragonflybot-grpc-client: error: server ended the stream: "
        "UNAVAILABLE (server is shutting down)"
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_server_is_one_line_and_exit_1() -> None:
    port = free_port()
    result = run(
        script("dragonflybot-grpc-client"), "--server", f"127.0.0.1:{port}", "--count", "1"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"dragonflybot-grpc-client: error: cannot connect to 127.0.0.1:{port}: Connection refused"
    ]


def test_client_retry_waits_for_the_server() -> None:
    port = free_port()
    client = Proc(
        script("dragonflybot-grpc-client"),
        "--server",
        f"127.0.0.1:{port}",
        "--count",
        "2",
        "--format",
        "json",
        "--retry",
    )
    client.wait_for_line(r"Connection refused; retrying in")
    proc = Proc(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        f"127.0.0.1:{port}",
    )
    try:
        code, out, _ = client.finish(timeout=30)
        assert code == 0
        assert len(out.splitlines()) == 2
    finally:
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.finish()[0] == 0


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def bad_config(tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text('[[instruments]]\nname = "ethbtc"\nlisten = "127.0.0.1:0"\ncolour = "blue"\n')
    return str(path)


USAGE_CASES = {
    "unknown venue": (
        ["--instrument-name", "ethbtc", "--venues", "binance,nosuch"],
        "unknown venue 'nosuch'",
    ),
    "bad listen": (["--instrument-name", "ethbtc", "--listen", "localhost"], "bad listen address"),
    "bad port": (
        ["--instrument-name", "ethbtc", "--listen", "127.0.0.1:99999"],
        "port must be 0-65535",
    ),
    "missing instrument": ([], "missing instrument"),
    "bad instrument": (["--instrument-name", "eth btc"], "bad instrument"),
    "bad depth": (["--instrument-name", "ethbtc", "--depth", "0"], "bad depth 0"),
    "bad client rate": (
        ["--instrument-name", "ethbtc", "--client-max-rate", "-5"],
        "bad rate -5.0",
    ),
    "unknown flag": (["--instrument-name", "ethbtc", "--colour"], "unrecognized arguments"),
    "missing config": (["--config", "/nonexistent/dragonfly.toml"], "cannot read config"),
}


@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_errors_are_one_line_and_exit_2(case: str) -> None:
    args, message = USAGE_CASES[case]
    result = run(script("dragonflybot-grpc-server"), *args)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dragonflybot-grpc-server: error: ")
    assert message in lines[0]


def test_bad_config_file_names_the_key(bad_config: str) -> None:
    result = run(script("dragonflybot-grpc-server"), "--config", bad_config)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dragonflybot-grpc-server: error: {bad_config}: instruments[0].colour: unknown key"
    ]


def test_port_in_use_is_exit_2(taken_port: int) -> None:
    result = run(
        script("dragonflybot-grpc-server"),
        "--instrument-name",
        "ethbtc",
        "--simulate",
        "--listen",
        f"127.0.0.1:{taken_port}",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"dragonflybot-grpc-server: error: cannot listen on 127.0.0.1:{taken_port}: "
        "address already in use"
    ]


def test_demo_runs_offline_for_its_duration() -> None:
    result = run(
        script("dragonflybot"), "demo", "--duration", "2", "--format", "json", "--seed", "3"
    )
    assert result.returncode == 0, result.stderr
    books = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(books) > 3
    # Six venues share ten levels a side: each shows on one side or the other.
    assert {lv["exchange"] for b in books for lv in [*b["bids"], *b["asks"]]} == set(VENUES)
    assert "Traceback" not in result.stderr


def test_dispatcher() -> None:
    unknown = run(script("dragonflybot"), "bogus")
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "dragonflybot: error: unknown command 'bogus' "
        "(known: demo, server, client, health, sim, record, feed, aggregate)"
    ]
    for command in ("demo", "server", "client", "health", "sim", "record", "feed", "aggregate"):
        helped = run(script("dragonflybot"), command, "--help")
        assert helped.returncode == 0, (command, helped.stderr)
        assert "usage:" in helped.stdout
