"""A venue that refuses the instrument leaves that book with one log line and a counter.

Real feeds against the simulator, Binance answering every subscription with its error
reply: the service does not crash, Binance is out of the book (logged once, counted in
``dragonflybot_feed_subscriptions_rejected_total``), Bitstamp goes on being served.
"""

from __future__ import annotations

import logging

import pytest
import trio

from dragonflybot.app import App, run_app
from dragonflybot.config import AppConfig, InstrumentConfig, VenueConfig
from dragonflybot.service.channel import open_channel
from dragonflybot.service.messages import Empty
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub
from dragonflybot.sim import Faults, SimConfig, SimHandle, serve_simulation


async def test_a_rejecting_venue_is_excluded_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sim_config = SimConfig(
        instruments=("ethbtc",),
        seed=4,
        rate=50.0,
        faults={"binance": Faults(reject_subscriptions=True)},
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            sim: SimHandle = await nursery.start(serve_simulation, sim_config)
            venues = [
                VenueConfig(
                    name=name,
                    mode="depth",
                    ws_url=sim.endpoints[name].ws_url,
                    rest_url=sim.endpoints[name].rest_url,
                )
                for name in ("binance", "bitstamp")
            ]
            config = AppConfig(
                instruments=[InstrumentConfig(name="ethbtc", depth=5, listen="127.0.0.1:0")],
                venues=venues,
                metrics_listen="127.0.0.1:0",
                shutdown_grace=0.5,
            )
            app: App = await nursery.start(run_app, config)
            runtime = app.instruments["ETH-BTC"]
            async with open_channel("127.0.0.1", runtime.port) as channel:
                async for summary in OrderbookAggregatorStub(channel).BookSummary(Empty()):
                    if summary.bids:
                        assert {lv.exchange for lv in summary.bids} == {"bitstamp"}
                        break
            stats = runtime.feed_stats["binance"]
            assert stats.state == "down" and stats.rejections == 1
            labels = {"instrument": "ETH-BTC", "venue": "binance"}
            assert (
                app.registry.get_sample_value(
                    "dragonflybot_feed_subscriptions_rejected_total", labels
                )
                == 1
            )
            assert runtime.feed_stats["bitstamp"].state == "live"
            app.shutdown()
            nursery.cancel_scope.cancel()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "binance is out of the ETH-BTC book" in errors[0] and "rejected" in errors[0]
