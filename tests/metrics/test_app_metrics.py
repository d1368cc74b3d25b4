"""``run_app`` with ``metrics_listen``, scraped over HTTP while fake or simulated venues run."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.app import App, FeedRunner, run_app
from dragonflybot.cli.simulated import run_with_simulation
from dragonflybot.config import AppConfig, InstrumentConfig, SimulationConfig, VenueConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.errors import ServiceError
from dragonflybot.feed import FeedStats
from dragonflybot.service import ReceivedSummary, follow_book
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def numbered(venue: str, n: int, depth: int) -> VenueView:
    """A venue's top ``depth`` with best bid ``n``: every view is a real change."""
    bids = tuple(Level(n * ONE - i, ONE) for i in range(depth))
    asks = tuple(Level(n * ONE + ONE + i, ONE) for i in range(depth))
    return VenueView(venue, bids, asks, None, time.monotonic_ns())


class SwitchableFeeds:
    """Fake feeds that count like real ones and go down when the test says so."""

    def __init__(self) -> None:
        self.go_down: dict[str, trio.Event] = {}

    def down(self, venue: str) -> None:
        self.go_down.setdefault(venue, trio.Event()).set()

    async def __call__(
        self,
        config: VenueConfig,
        instrument: str,
        depth: int,
        send: trio.MemorySendChannel[VenueUpdate],
        *,
        stats: FeedStats | None = None,
        venues: Mapping[str, VenueSpec] = VENUES,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        assert stats is not None
        stop = self.go_down.setdefault(config.name, trio.Event())
        async with send:
            stats.state = "live"
            task_status.started()
            n = 0
            while not stop.is_set():
                n += 1
                stats.frames += 1
                stats.parsed += 1
                stats.forwarded += 1
                await send.send(numbered(config.name, n, depth))
                await trio.sleep(0.002)
            stats.state = "down"
            stats.reconnects += 1
            await send.send(VenueDown(config.name, "told to"))
            await trio.sleep_forever()


def app_config(
    instrument: str = "ethbtc", metrics_listen: str | None = "127.0.0.1:0", **kwargs: object
) -> AppConfig:
    return AppConfig(
        instruments=[InstrumentConfig(name=instrument, depth=3, listen="127.0.0.1:0")],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
        metrics_listen=metrics_listen,
        shutdown_grace=0.5,
        **kwargs,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def running(
    config: AppConfig, feeds: FeedRunner | None = None
) -> AsyncIterator[tuple[App, Callable[[], str]]]:
    """The app, and its metrics URL (fails the test if there is none)."""
    async with trio.open_nursery() as nursery:
        if config.simulation is not None:
            app: App = (await nursery.start(run_with_simulation, config)).app
        elif feeds is None:
            app = await nursery.start(run_app, config)
        else:
            app = await nursery.start(
                lambda task_status: run_app(config, feed_runner=feeds, task_status=task_status)
            )

        def url() -> str:
            assert app.metrics_address is not None
            host, port = app.metrics_address
            return f"http://{host}:{port}/metrics"

        yield app, url
        app.shutdown()


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape_until(url: str, done: Callable[[Samples], bool]) -> Samples:
    with trio.fail_after(10):
        while True:
            samples = await scrape(url)
            if done(samples):
                return samples
            await trio.sleep(0.01)


async def test_counters_move_and_the_state_gauge_follows_a_feed_going_down() -> None:
    feeds = SwitchableFeeds()
    async with running(app_config(), feeds) as (app, url):
        assert app.metrics_address is not None and app.metrics_address[1] != 0
        frames = "dragonflybot_feed_frames_received_total"
        bitstamp = {"instrument": "ETH-BTC", "venue": "bitstamp"}
        first = await scrape_until(url(), lambda s: (value(s, frames, **bitstamp) or 0) > 0)
        before = value(first, frames, **bitstamp)
        assert before is not None
        later = await scrape_until(url(), lambda s: (value(s, frames, **bitstamp) or 0) > before)
        assert value(later, "dragonflybot_feed_state", **bitstamp, state="live") == 1
        assert value(later, "dragonflybot_live_venues", instrument="ETH-BTC") == 2

        feeds.down("bitstamp")
        down = await scrape_until(
            url(), lambda s: value(s, "dragonflybot_feed_state", **bitstamp, state="down") == 1
        )
        assert value(down, "dragonflybot_feed_state", **bitstamp, state="live") == 0
        assert value(down, "dragonflybot_feed_reconnects_total", **bitstamp) == 1
        binance = {"instrument": "ETH-BTC", "venue": "binance"}
        assert value(down, "dragonflybot_feed_state", **binance, state="live") == 1
        await scrape_until(
            url(), lambda s: value(s, "dragonflybot_live_venues", instrument="ETH-BTC") == 1
        )


async def test_histograms_and_stream_counters_fill_while_a_client_streams() -> None:
    async with running(app_config(), SwitchableFeeds()) as (app, url):
        runtime = app.instruments["ETH-BTC"]
        books: Fanout[ReceivedSummary] = Fanout()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_book, "127.0.0.1", runtime.port, books)
            with books.subscribe() as received, trio.fail_after(10):
                async for summary in received:
                    if summary.number >= 5:
                        break
            streaming = await scrape(url())
            nursery.cancel_scope.cancel()
        key = {"instrument": "ETH-BTC"}
        assert value(streaming, "dragonflybot_grpc_connections", **key) == 1
        assert value(streaming, "dragonflybot_grpc_book_streams", **key) == 1
        assert value(streaming, "dragonflybot_grpc_book_streams_opened_total", **key) == 1
        assert (value(streaming, "dragonflybot_grpc_summaries_sent_total", **key) or 0) >= 5
        for hop in ("receive_to_merged", "receive_to_sent"):
            count = value(streaming, f"dragonflybot_latency_{hop}_seconds_count", **key)
            assert count is not None and count > 0, hop
            total = value(streaming, f"dragonflybot_latency_{hop}_seconds_sum", **key)
            assert total is not None and total > 0, hop
        after = await scrape_until(
            url(), lambda s: value(s, "dragonflybot_grpc_book_streams", **key) == 0
        )
        assert value(after, "dragonflybot_grpc_book_streams_opened_total", **key) == 1


async def test_real_feeds_against_the_simulator_are_counted() -> None:
    config = app_config(simulation=SimulationConfig(seed=2, rate=50.0))
    async with running(config) as (_, url):
        binance = {"instrument": "ETH-BTC", "venue": "binance"}

        def live_and_parsing(s: Samples) -> bool:
            return (
                value(s, "dragonflybot_feed_state", **binance, state="live") == 1
                and (value(s, "dragonflybot_feed_frames_parsed_total", **binance) or 0) > 2
            )

        samples = await scrape_until(url(), live_and_parsing)
        assert value(samples, "dragonflybot_feed_connects_total", **binance) == 1
        assert (
            value(samples, "dragonflybot_feed_book_updates_forwarded_total", **binance) or 0
        ) > 0
        assert value(samples, "dragonflybot_feed_frames_malformed_total", **binance) == 0
        # Every forwarded view was timed from its frame's receipt (a real feed, real frames).
        timed = value(samples, "dragonflybot_latency_receive_to_parsed_seconds_count", **binance)
        assert timed is not None and timed > 0
        updates = value(samples, "dragonflybot_aggregator_updates_total", instrument="ETH-BTC")
        assert updates is not None and updates > 0


async def test_only_the_metrics_path_is_served() -> None:
    async with running(app_config(), SwitchableFeeds()) as (_, url):
        base = url().removesuffix("/metrics")
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(base + "/")).status_code == 404
            assert (await client.post(url(), content=b"x")).status_code == 405
            head = await client.head(url())
            assert head.status_code == 200 and head.content == b""
            query = await client.get(url() + "?name[]=dragonflybot_live_venues")
            assert query.status_code == 200 and b"dragonflybot_live_venues" in query.content


async def test_no_metrics_server_without_the_setting() -> None:
    async with running(app_config(metrics_listen=None), SwitchableFeeds()) as (app, _):
        assert app.metrics_address is None
        # The registry still exists, for an embedding program to serve its own way.
        assert (
            app.registry.get_sample_value(
                "dragonflybot_feed_frames_received_total",
                {"instrument": "ETH-BTC", "venue": "binance"},
            )
            is not None
        )


async def test_a_taken_metrics_port_fails_the_start_with_a_service_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.RaisesGroup(
            pytest.RaisesExc(ServiceError, match=f"127.0.0.1:{port}: address already in use"),
            flatten_subgroups=True,
        ):
            async with running(app_config(metrics_listen=f"127.0.0.1:{port}"), SwitchableFeeds()):
                pytest.fail("the app started")


async def test_two_apps_in_one_process_serve_their_own_metrics() -> None:
    async with (
        running(app_config("ethbtc"), SwitchableFeeds()) as (first, first_url),
        running(app_config("btcusdt"), SwitchableFeeds()) as (second, second_url),
    ):
        assert first.registry is not second.registry
        name = "dragonflybot_feed_frames_received_total"
        one = await scrape(first_url())
        two = await scrape(second_url())
        assert value(one, name, instrument="ETH-BTC", venue="binance") is not None
        assert value(one, name, instrument="BTC-USDT", venue="binance") is None
        assert value(two, name, instrument="BTC-USDT", venue="binance") is not None
        assert value(two, name, instrument="ETH-BTC", venue="binance") is None
