"""The examples run: the two-instrument config, and the hand-built topology."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import trio

from dragonflybot.app import plan_topology
from dragonflybot.cli.simulated import run_with_simulation
from dragonflybot.config import SimulationConfig, load_config
from dragonflybot.service.channel import open_channel
from dragonflybot.service.messages import Empty
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_two_instruments_config_serves_both_books() -> None:
    config = load_config(EXAMPLES / "two-instruments.toml")
    plans = plan_topology(config)
    assert [(p.name, p.port, p.depth) for p in plans] == [
        ("ETH-BTC", 50051, 10),
        ("BTC-USDT", 50052, 5),
    ]
    # Same file, offline and on free ports.
    assert config.listen == "127.0.0.1:50051" and plans[1].own_address
    config = msgspec.structs.replace(
        config,
        listen="127.0.0.1:0",
        instruments=[
            msgspec.structs.replace(i, listen="127.0.0.1:0") if i.listen else i
            for i in config.instruments
        ],
        simulation=SimulationConfig(seed=2),
        log_level="WARNING",
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            app = (await nursery.start(run_with_simulation, config)).app
            books = {}
            for name, runtime in app.instruments.items():
                async with open_channel("127.0.0.1", runtime.port) as channel:
                    async for summary in OrderbookAggregatorStub(channel).BookSummary(Empty()):
                        venues = {lv.exchange for lv in summary.bids}
                        if len(summary.bids) == runtime.plan.depth and venues == set(
                            v.name for v in runtime.plan.venues
                        ):
                            books[name] = summary
                            break
            app.shutdown()
    assert len(books["ETH-BTC"].asks) == 10
    assert {lv.exchange for lv in books["BTC-USDT"].asks} == {"binance"}
    assert books["BTC-USDT"].bids[0].price > 1000 > books["ETH-BTC"].bids[0].price


def test_custom_topology_example_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "custom_topology.py"),
            "--duration",
            "2",
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("top-5 book on 127.0.0.1:")
    deep = [line for line in lines if line.startswith("deep book #")]
    assert any("40 levels" in line and "live binance,bitstamp" in line for line in deep)
    assert "binance: " in result.stdout and result.stdout.count("state live") == 2
    assert "Traceback" not in result.stderr
