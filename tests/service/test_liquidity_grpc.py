"""``dragonflybot.v1.LiquidityService`` through grpcio, on the app's gRPC address."""

from __future__ import annotations

from typing import Any

import grpc
import trio
from fix.test_app_fix import ScriptedFeeds
from fix.test_server_sockets import view

from dragonflybot.app import App, run_app
from dragonflybot.config import AppConfig, InstrumentConfig, VenueConfig
from dragonflybot.service.liquidity import SERVICE_NAME
from dragonflybot.service.proto import liquidity_v1_pb2

pb: Any = liquidity_v1_pb2


def config() -> AppConfig:
    return AppConfig(
        instruments=[InstrumentConfig(name="ethbtc", depth=4, listen="127.0.0.1:0")],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
        liquidity_depth=5,
        shutdown_grace=0.5,
    )


def ladder_and_costs(target: str) -> tuple[Any, Any, Any, grpc.StatusCode]:
    with grpc.insecure_channel(target) as channel:
        ladder = channel.unary_stream(
            f"/{SERVICE_NAME}/Ladder",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.LadderUpdate.FromString,
        )
        cost = channel.unary_unary(
            f"/{SERVICE_NAME}/CostToTrade",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.CostToTradeReply.FromString,
        )
        call = ladder(pb.LadderRequest(instrument="ETH-BTC", depth=2), timeout=30)
        first = next(call)
        while len(first.live_venues) < 2:
            first = next(call)
        call.cancel()
        # An empty instrument is the address's default (its Keyrock instrument).
        filled = cost(pb.CostToTradeRequest(side=pb.SIDE_BUY, quantity="2"), timeout=30)
        short = cost(
            pb.CostToTradeRequest(instrument="ethbtc", side=pb.SIDE_SELL, quantity="100"),
            timeout=30,
        )
        try:
            cost(pb.CostToTradeRequest(side=pb.SIDE_UNSPECIFIED, quantity="1"), timeout=30)
        except grpc.RpcError as exc:
            bad = exc.code()
        try:
            cost(pb.CostToTradeRequest(instrument="BTC-EUR", side=pb.SIDE_BUY, quantity="1"))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert "ETH-BTC" in (exc.details() or "")
        else:
            raise AssertionError("an unknown instrument was answered")
        return first, filled, short, bad


async def test_ladder_stream_and_cost_to_trade() -> None:
    feeds = ScriptedFeeds()
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(config(), feed_runner=feeds, task_status=task_status)
        )
        await feeds.push(view("binance", "10", "11"), view("bitstamp", "10", "11.5", "2"))
        runtime = app.instruments["ETH-BTC"]
        ladder, filled, short, bad = await trio.to_thread.run_sync(
            ladder_and_costs, f"127.0.0.1:{runtime.port}"
        )
        app.shutdown()
    assert ladder.instrument == "ETH-BTC" and filled.instrument == "ETH-BTC"
    assert short.instrument == "ETH-BTC"
    assert [(lv.price, lv.amount) for lv in ladder.bids] == [("10", "3")]
    assert [(v.venue, v.amount) for v in ladder.bids[0].venues] == [
        ("binance", "1"),
        ("bitstamp", "2"),
    ]
    assert [lv.price for lv in ladder.asks] == ["11", "11.5"]
    assert filled.filled and filled.vwap == "11.25" and filled.worst_price == "11.5"
    assert filled.mid == "10.5" and filled.slippage == "0.75"
    assert [(v.venue, v.amount) for v in filled.by_venue] == [("binance", "1"), ("bitstamp", "1")]
    assert not short.filled and short.available == "3" and short.taken == "3"
    assert bad == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_ladder_deeper_than_configured_is_refused() -> None:
    depth = 6
    feeds = ScriptedFeeds()
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(config(), feed_runner=feeds, task_status=task_status)
        )
        target = f"127.0.0.1:{app.instruments['ETH-BTC'].port}"

        def ask() -> grpc.StatusCode:
            with grpc.insecure_channel(target) as channel:
                ladder = channel.unary_stream(
                    f"/{SERVICE_NAME}/Ladder",
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=pb.LadderUpdate.FromString,
                )
                try:
                    next(ladder(pb.LadderRequest(depth=depth), timeout=30))
                except grpc.RpcError as exc:
                    return exc.code()  # type: ignore[no-any-return]
                return grpc.StatusCode.OK

        assert await trio.to_thread.run_sync(ask) == grpc.StatusCode.INVALID_ARGUMENT
        app.shutdown()
