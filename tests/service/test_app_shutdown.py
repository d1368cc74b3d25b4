"""``run_app`` with fake feeds: the topology wiring and a shutdown no client can hold up."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest
import trio

from dragonflybot.app import App, plan_topology, run_app
from dragonflybot.config import AppConfig, InstrumentConfig, VenueConfig
from dragonflybot.core.view import VenueUpdate
from dragonflybot.errors import ConfigError, SubscriptionError
from dragonflybot.feed import FeedStats
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec

from .conftest import numbered
from .test_pacing import DEPTH, RawClient


async def fake_feed(
    config: VenueConfig,
    instrument: str,
    depth: int,
    send: trio.MemorySendChannel[VenueUpdate],
    *,
    stats: FeedStats | None = None,
    venues: Mapping[str, VenueSpec] = VENUES,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A venue that changes its book every millisecond, forever."""
    async with send:
        task_status.started()
        n = 0
        while True:
            n += 1
            await send.send(numbered(config.name, n, levels=depth))
            await trio.sleep(0.001)


def config(*names: str) -> AppConfig:
    return AppConfig(
        instruments=[
            InstrumentConfig(name=name, depth=DEPTH, listen="127.0.0.1:0") for name in names
        ],
        venues=[VenueConfig(name="binance")],
        shutdown_grace=0.5,
    )


def test_plan_needs_an_instrument_and_known_venues() -> None:
    with pytest.raises(ConfigError, match="no instrument"):
        plan_topology(AppConfig())
    bad = AppConfig(
        instruments=[InstrumentConfig(name="ethbtc", venues=[VenueConfig(name="nosuch")])]
    )
    with pytest.raises(ConfigError, match=r"instruments\[0\]\.venues\[0\]\.name: unknown venue"):
        plan_topology(bad)


async def test_each_instrument_gets_its_own_server_and_book() -> None:
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(
                config("ethbtc", "btcusdt"), feed_runner=fake_feed, task_status=task_status
            )
        )
        ports = {rt.port for rt in app.instruments.values()}
        assert len(ports) == 2 and 0 not in ports
        for runtime in app.instruments.values():
            with runtime.publisher.books.subscribe() as books:
                async for book in books:
                    if book.state.live:
                        break
            assert book.state.live == {"binance"}
        app.shutdown()


async def test_a_client_that_stopped_reading_cannot_hold_the_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            app: App = await nursery.start(
                lambda task_status: run_app(
                    config("ethbtc"), feed_runner=fake_feed, task_status=task_status
                )
            )
            runtime = app.instruments["ETH-BTC"]
            sock = trio.socket.socket()
            await sock.connect(("127.0.0.1", runtime.port))
            client = RawClient(sock)
            await client.start_stream()
            await client.read_for(0.2)
            assert client.prices
            await trio.sleep(0.5)  # stalled: the kernel buffers fill up
            app.shutdown()
        # run_app returned: the grace period ran out and the rest was cancelled.
        sock.close()
    assert runtime.server.connection_count == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []


async def rejecting_or_fake_feed(
    config: VenueConfig,
    instrument: str,
    depth: int,
    send: trio.MemorySendChannel[VenueUpdate],
    *,
    stats: FeedStats | None = None,
    venues: Mapping[str, VenueSpec] = VENUES,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bitstamp refuses the symbol for good; Binance streams as usual."""
    if config.name == "bitstamp":
        async with send:
            raise SubscriptionError(config.name, f"subscription to {instrument} rejected")
    await fake_feed(config, instrument, depth, send, stats=stats, task_status=task_status)


async def test_a_venue_that_rejects_the_symbol_costs_only_that_venue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    two_venues = AppConfig(
        instruments=[InstrumentConfig(name="ethbtc", depth=DEPTH, listen="127.0.0.1:0")],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
        shutdown_grace=0.5,
    )
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(
                two_venues, feed_runner=rejecting_or_fake_feed, task_status=task_status
            )
        )
        runtime = app.instruments["ETH-BTC"]
        with runtime.publisher.books.subscribe() as books:
            async for book in books:
                if book.state.live:
                    break
        assert book.state.live == {"binance"}
        stats = runtime.feed_stats["bitstamp"]
        assert stats.state == "down"
        assert stats.last_error is not None and "rejected" in stats.last_error
        app.shutdown()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("bitstamp" in message and "rejected" in message for message in errors)
    ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("feed ready")]
    assert ready == ["feed ready: feed:ETH-BTC:binance"]
