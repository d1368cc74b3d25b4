"""``dragonflybot sim`` / ``dragonflybot record`` as commands (in process and as a process)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dragonflybot.cli.sim import record_main, sim_main
from dragonflybot.sim.capture import RecordKind, read_capture

SIM = "import sys; from dragonflybot.cli.sim import sim_main; sys.exit(sim_main(sys.argv[1:]))"


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bogus"], "unrecognized arguments"),
        (["--venue", "nosuch"], "invalid choice"),
        (["--rate", "-3"], "must be > 0"),
        (["--instrument", "ETH-"], "instrument 'ETH-'"),
        (["--instrument", "Eth!"], "instrument 'Eth!'"),
        (["--gap-every", "0"], "faults.gap_every must be >= 1"),
        (["--gap-every", "okx=2", "--venue", "binance"], "'okx' is not simulated here"),
        (["--drop-probability", "lots"], "--drop-probability (binance)"),
        (["--reject-subscriptions", "maybe"], "--reject-subscriptions"),
        (["--speed", "2", "--as-fast-as-possible"], "not allowed with"),
        (["--replay", "/nonexistent/capture"], "/nonexistent/capture"),
    ],
)
def test_bad_arguments_one_line_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim_main(argv) == 2
    assert needle in one_error_line(capsys.readouterr().err)


def test_port_in_use_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert sim_main(["--venue", "binance", "--port-binance", str(port), "--duration", "5"]) == 2
    assert "cannot listen" in one_error_line(capsys.readouterr().err)


def test_runs_and_prints_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--venue", "bitstamp", "--seed", "3", "--duration", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    venue, ws_url, rest_url = out[0].split("\t")
    assert venue == "bitstamp"
    assert ws_url.startswith("ws_url=ws://127.0.0.1:")
    assert rest_url.startswith("rest_url=http://127.0.0.1:")


def test_record_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert record_main(["--venue", "binance"]) == 2
    assert "required" in one_error_line(capsys.readouterr().err)


def test_record_unreachable_venue_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = record_main(
        [
            "--venue",
            "binance",
            "--instrument",
            "ethbtc",
            "-o",
            str(tmp_path / "x.cap"),
            "--ws-url",
            "ws://127.0.0.1:1/stream",
        ]
    )
    assert code == 1
    assert "cannot connect" in one_error_line(capsys.readouterr().err)


def test_standalone_sim_recorded_then_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIM, "--venue", "binance", "--venue", "bitstamp", "--rate", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        endpoints = {
            parts[0]: dict(p.split("=", 1) for p in parts[1:])
            for parts in (line.strip().split("\t") for line in lines)
        }
        assert set(endpoints) == {"binance", "bitstamp"}
        output = tmp_path / "bitstamp.cap"
        code = record_main(
            [
                "--venue",
                "bitstamp",
                "--instrument",
                "ethbtc",
                "-o",
                str(output),
                "--count",
                "20",
                "--ws-url",
                endpoints["bitstamp"]["ws_url"],
                "--rest-url",
                endpoints["bitstamp"]["rest_url"],
            ]
        )
        assert code == 0
        records = read_capture(output).records
        assert sum(r.kind is RecordKind.WS_IN for r in records) == 20
        assert any(r.kind is RecordKind.REST for r in records)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_fault_flags_build_each_venues_faults() -> None:
    from dragonflybot.cli.sim import _sim_parser, sim_config_from_args
    from dragonflybot.sim import Faults
    from dragonflybot.venues.registry import VENUES

    args = _sim_parser().parse_args(
        [
            "--instrument",
            "ETH-BTC",
            "--gap-every",
            "bitstamp=2",
            "--malformed-every",
            "40",
            "--reject-subscriptions",
            "binance",
            "--stall-after",
            "binance=10",
            "--stall-seconds",
            "binance=2.5",
            "--corrupt-book-every",
            "kraken=5",
            "--fault-instrument",
            "kraken=eth-btc",
        ]
    )
    config = sim_config_from_args(args)
    assert config.instruments == ("ethbtc",)
    assert config.faults == {
        "binance": Faults(
            malformed_every=40, reject_subscriptions=True, stall_after=10, stall_seconds=2.5
        ),
        "bitstamp": Faults(gap_every=2, malformed_every=40),
        "kraken": Faults(malformed_every=40, corrupt_book_every=5, fault_instrument="ethbtc"),
        # A flag without a venue applies to every simulated (registered) venue.
        **{
            v: Faults(malformed_every=40)
            for v in VENUES
            if v not in ("binance", "bitstamp", "kraken")
        },
    }


def test_every_fault_knob_has_a_flag_with_help() -> None:
    import msgspec

    from dragonflybot.cli.sim import _FAULT_HELP, _sim_parser
    from dragonflybot.sim import Faults

    fields = {field.name for field in msgspec.structs.fields(Faults)}
    assert set(_FAULT_HELP) == fields  # a new knob needs its flag's help
    text = _sim_parser().format_help()
    for name in fields:
        assert "--" + name.replace("_", "-") in text
        assert _FAULT_HELP[name].split()[0] in text
