"""The app's gRPC API: every instrument on one address (v1, Keyrock, reflection, health).

``run_app`` with two instruments sharing the API address (top-level ``listen``) and
a third on an address of its own. grpcio clients (an implementation we did not
write) use dragonflybot.v1 and the Keyrock service against the same port, the
reflection client lists every service, health knows each service name, and the
v1 streams are counted in the metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
import trio
from fix.test_app_fix import ScriptedFeeds
from fix.test_server_sockets import view

from dragonflybot.app import App, plan_servers, plan_topology, run_app
from dragonflybot.config import AppConfig, InstrumentConfig, VenueConfig, decode_config
from dragonflybot.core.merge import merge
from dragonflybot.service.messages import NOT_SERVING, SERVING
from dragonflybot.service.summary import to_summary

from .conftest import grpcio_health, grpcio_take, wait_for
from .test_v1_grpcio import stream_book

VENUES = ("binance", "bitstamp")


class ThreeInstrumentFeeds(ScriptedFeeds):
    """``ScriptedFeeds`` per (instrument, venue): each book is fed on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.by_instrument = {
            (i, v): trio.open_memory_channel[Any](8)
            for i in ("ETH-BTC", "BTC-USDT", "SOL-USDT")
            for v in VENUES
        }

    async def __call__(  # type: ignore[override]
        self, config: VenueConfig, instrument: str, depth: int, send: Any, **kw: Any
    ) -> None:
        receive = self.by_instrument[(instrument, config.name)][1]
        async with send:
            kw["task_status"].started()
            async for update in receive:
                await send.send(update)

    async def feed(self, instrument: str, *views: Any) -> None:
        for v in views:
            await self.by_instrument[(instrument, v.venue)][0].send(v)


def config() -> AppConfig:
    return AppConfig(
        listen="127.0.0.1:0",
        instruments=[
            InstrumentConfig(name="ethbtc", depth=4),
            InstrumentConfig(name="BTC-USDT", depth=3),
            InstrumentConfig(name="SOL-USDT", depth=2, listen="127.0.0.1:0"),
        ],
        venues=[VenueConfig(name=v) for v in VENUES],
        liquidity_depth=4,
        shutdown_grace=0.5,
    )


@asynccontextmanager
async def running() -> AsyncIterator[tuple[App, ThreeInstrumentFeeds]]:
    feeds = ThreeInstrumentFeeds()
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(config(), feed_runner=feeds, task_status=task_status)
        )
        yield app, feeds
        app.shutdown()


def test_the_api_address_serves_instruments_without_one_of_their_own() -> None:
    cfg = config()
    servers = plan_servers(cfg, plan_topology(cfg))
    assert [(s.api, s.default, s.instruments) for s in servers] == [
        (True, "ETH-BTC", ("ETH-BTC", "BTC-USDT")),
        (False, "SOL-USDT", ("SOL-USDT",)),
    ]
    # No top-level listen and every instrument on its own address: no API address bound.
    own = decode_config(b'[[instruments]]\nname = "ethbtc"\nlisten = "127.0.0.1:0"\n')
    assert [s.api for s in plan_servers(own, plan_topology(own))] == [False]
    # An instrument naming the API address joins it (the first there is its default).
    joined = decode_config(
        b'listen = "127.0.0.1:7010"\n[[instruments]]\nname = "ethbtc"\n'
        b'[[instruments]]\nname = "btcusdt"\nlisten = "127.0.0.1:7010"\n'
    )
    assert [(s.port, s.instruments) for s in plan_servers(joined, plan_topology(joined))] == [
        (7010, ("ETH-BTC", "BTC-USDT"))
    ]
    # Every instrument on an address of its own, one of them the default API address:
    # no API address is bound, so that instrument keeps its own server.
    alone = decode_config(
        b'[[instruments]]\nname = "ethbtc"\nlisten = "127.0.0.1:50051"\n'
        b'[[instruments]]\nname = "btcusdt"\nlisten = "127.0.0.1:50052"\n'
    )
    assert [(s.api, s.port, s.instruments) for s in plan_servers(alone, plan_topology(alone))] == [
        (False, 50051, ("ETH-BTC",)),
        (False, 50052, ("BTC-USDT",)),
    ]


async def test_v1_and_keyrock_of_two_instruments_on_one_port() -> None:
    async with running() as (app, feeds):
        eth = (view("binance", "0.05", "0.051"), view("bitstamp", "0.0501", "0.0511"))
        await feeds.feed("ETH-BTC", *eth)
        await feeds.feed("BTC-USDT", view("binance", "60000", "60001"))
        await feeds.feed("SOL-USDT", view("bitstamp", "150", "151"))
        api = app.instruments["ETH-BTC"]
        assert app.instruments["BTC-USDT"].port == api.port
        own = app.instruments["SOL-USDT"]
        assert own.port != api.port
        await wait_for(lambda: all(rt.latest() is not None for rt in app.instruments.values()))
        target = f"127.0.0.1:{api.port}"

        (eth_book,) = await trio.to_thread.run_sync(
            lambda: stream_book(target, 1, instrument="ETH-BTC")
        )
        (btc_book,) = await trio.to_thread.run_sync(
            lambda: stream_book(target, 1, instrument="btcusdt")
        )
        # Every address serves every instrument over v1.
        (sol_book,) = await trio.to_thread.run_sync(
            lambda: stream_book(target, 1, instrument="SOL-USDT")
        )
        (summary,) = await trio.to_thread.run_sync(grpcio_take, target, 1)
        (own_summary,) = await trio.to_thread.run_sync(grpcio_take, f"127.0.0.1:{own.port}", 1)

        assert (eth_book.instrument, eth_book.bids[0].venue) == ("ETH-BTC", "bitstamp")
        assert btc_book.instrument == "BTC-USDT" and btc_book.bids[0].price_text == "60000"
        assert sol_book.instrument == "SOL-USDT"
        # Keyrock: the default instrument of each address, wire-exact.
        assert summary == to_summary(merge(eth, 4))
        assert own_summary == to_summary(merge([view("bitstamp", "150", "151")], 2))

        sample = app.registry.get_sample_value
        assert sample("dragonflybot_grpc_v1_book_streams_opened_total", {"instrument": "ETH-BTC"})
        assert sample("dragonflybot_grpc_v1_books_sent_total", {"instrument": "BTC-USDT"}) == 1
        assert sample("dragonflybot_grpc_v1_book_streams", {"instrument": "SOL-USDT"}) == 0


async def test_health_knows_every_service_of_the_address() -> None:
    async with running() as (app, feeds):
        target = f"127.0.0.1:{app.instruments['ETH-BTC'].port}"
        # Only BTC-USDT (not the Keyrock default) has a live venue.
        await feeds.feed("BTC-USDT", view("binance", "60000", "60001"))
        # Wait for the state that says so, not just any state: a state published before
        # the view was merged (no venue live yet) would race the health checks below.
        await wait_for(
            lambda: (state := app.instruments["BTC-USDT"].latest()) is not None and state.serving
        )

        def statuses() -> dict[str, int]:
            names = (
                "",
                "dragonflybot.v1.BookService",
                "dragonflybot.v1.LiquidityService",
                "orderbook.OrderbookAggregator",
            )
            return {name: grpcio_health(target, name) for name in names}

        got = await trio.to_thread.run_sync(statuses)
        assert got == {
            "": SERVING,
            "dragonflybot.v1.BookService": SERVING,
            "dragonflybot.v1.LiquidityService": SERVING,
            "orderbook.OrderbookAggregator": NOT_SERVING,
        }


async def test_reflection_lists_every_service_of_the_api_port() -> None:
    reflection = pytest.importorskip("grpc_reflection.v1alpha.proto_reflection_descriptor_database")
    from google.protobuf import descriptor_pool

    def discover(target: str) -> tuple[list[str], list[str]]:
        with grpc.insecure_channel(target) as channel:
            database = reflection.ProtoReflectionDescriptorDatabase(channel)
            services = list(database.get_services())
            pool = descriptor_pool.DescriptorPool(database)
            ladder = pool.FindServiceByName("dragonflybot.v1.LiquidityService")
            return services, [m.name for m in ladder.methods]

    async with running() as (app, _):
        target = f"127.0.0.1:{app.instruments['ETH-BTC'].port}"
        services, methods = await trio.to_thread.run_sync(discover, target)
    assert set(services) == {
        "dragonflybot.v1.BookService",
        "dragonflybot.v1.LiquidityService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "orderbook.OrderbookAggregator",
    }
    assert methods == ["Ladder", "CostToTrade"]
