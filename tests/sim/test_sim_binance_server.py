"""A plain WebSocket + httpx client against simulated Binance, decoded with the feed Structs."""

from __future__ import annotations

import itertools

import httpx
import msgspec
import pytest
import trio_websocket

from dragonflybot.core.book import FullDepthBook
from dragonflybot.core.fixed import parse
from dragonflybot.sim.config import WsBackend
from dragonflybot.venues.base import parse_levels
from dragonflybot.venues.binance import (
    CommandError,
    CommandResult,
    DepthSnapshot,
    DepthUpdate,
    PartialDepth,
)

from .conftest import receive, receive_n, running, send_json


class Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


def decode_update(text: str, stream: str = "ethbtc@depth@100ms") -> DepthUpdate:
    frame = msgspec.json.decode(text, type=Combined)
    assert frame.stream == stream
    update = msgspec.json.decode(frame.data, type=DepthUpdate)
    assert update.e == "depthUpdate" and update.s == "ETHBTC"
    return update


async def test_subscribe_ack_then_continuous_diffs(ws_backend: WsBackend) -> None:
    async with (
        running(venues=("binance",), rate=500.0, ws_backend=ws_backend) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url) as ws,
    ):
        await send_json(ws, {"method": "SUBSCRIBE", "params": ["ethbtc@depth@100ms"], "id": 1})
        ack = msgspec.json.decode(await receive(ws), type=CommandResult)
        assert ack == CommandResult(id=1, result=None)
        updates = [decode_update(t) for t in await receive_n(ws, 40)]
    for before, after in itertools.pairwise(updates):
        assert before.u + 1 == after.U
        assert after.E >= before.E
    for update in updates:
        assert update.u >= update.U
        assert update.u - update.U + 1 == len(update.b) + len(update.a)
        for price, amount in update.b + update.a:
            assert len(price.partition(".")[2]) == 8 and len(amount.partition(".")[2]) == 8
            parse(price), parse(amount)


async def test_rest_snapshot_plus_later_diffs_equals_the_simulator_book(
    ws_backend: WsBackend,
) -> None:
    async with running(venues=("binance",), rate=100.0, depth=60, ws_backend=ws_backend) as sim:
        endpoints = sim.endpoints["binance"]
        async with (
            trio_websocket.open_websocket_url(
                endpoints.ws_url + "?streams=ethbtc@depth@100ms"
            ) as ws,
            httpx.AsyncClient(base_url=endpoints.rest_url) as http,
        ):
            buffered = [decode_update(t) for t in await receive_n(ws, 5)]
            response = await http.get("/api/v3/depth", params={"symbol": "ETHBTC", "limit": 5000})
            assert response.status_code == 200
            snapshot = msgspec.json.decode(response.content, type=DepthSnapshot)
            assert snapshot.lastUpdateId >= buffered[0].U
            buffered += [decode_update(t) for t in await receive_n(ws, 30)]
            sim.pause()
            await sim.flushed()
            book = FullDepthBook()
            book.load(parse_levels(snapshot.bids), parse_levels(snapshot.asks))
            last = snapshot.lastUpdateId
            applied = 0
            while True:
                for update in buffered:
                    if update.u <= last:
                        continue
                    assert last + 1 == update.U
                    book.apply(parse_levels(update.b), parse_levels(update.a))
                    last = update.u
                    applied += 1
                published = sim.published("binance", "ethbtc")
                if book.top_bids(1000) == published.top_bids(1000):
                    break
                buffered = [decode_update(await receive(ws))]
            assert applied > 0
            current = sim.book("binance", "ethbtc")
            assert book.top_bids(1000) == current.top_bids(1000)
            assert book.top_asks(1000) == current.top_asks(1000)
            # REST now serves exactly the book the diffs led to.
            again = msgspec.json.decode(
                (await http.get("/api/v3/depth?symbol=ETHBTC&limit=5000")).content,
                type=DepthSnapshot,
            )
            assert again.lastUpdateId == last


async def test_partial_depth_streams_on_the_raw_endpoint() -> None:
    async with running(venues=("binance",), rate=50.0) as sim:
        base = sim.endpoints["binance"].ws_url.removesuffix("/stream")
        async with trio_websocket.open_websocket_url(base + "/ws/ethbtc@depth5@100ms") as ws:
            frames = [msgspec.json.decode(t, type=PartialDepth) for t in await receive_n(ws, 10)]
    ids = [f.lastUpdateId for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for frame in frames:
        assert len(frame.bids) == 5 and len(frame.asks) == 5
        bids = [parse(p) for p, _ in frame.bids]
        asks = [parse(p) for p, _ in frame.asks]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0] < asks[0]


async def test_partial_book_matches_the_simulator_when_paused() -> None:
    async with running(venues=("binance",), rate=50.0) as sim:
        url = sim.endpoints["binance"].ws_url + "?streams=ethbtc@depth20@100ms"
        async with trio_websocket.open_websocket_url(url) as ws:
            await receive(ws)
            sim.pause()
            sim.advance(3)
            await sim.flushed()
            frames = await receive_n(ws, 3)
            last = msgspec.json.decode(
                msgspec.json.decode(frames[-1], type=Combined).data, type=PartialDepth
            )
            published = sim.published("binance", "ethbtc")
            assert parse_levels(last.bids) == list(published.top_bids(20))
            assert parse_levels(last.asks) == list(published.top_asks(20))


async def test_errors_unknown_stream_and_bad_requests() -> None:
    async with running(venues=("binance",)) as sim:
        endpoints = sim.endpoints["binance"]
        async with trio_websocket.open_websocket_url(endpoints.ws_url) as ws:
            await send_json(ws, {"method": "SUBSCRIBE", "params": ["dogeusdt@depth"], "id": 5})
            error = msgspec.json.decode(await receive(ws), type=CommandError)
            assert error.id == 5 and error.code == 2 and "dogeusdt@depth" in error.msg
            await ws.send_message("{not json")
            assert msgspec.json.decode(await receive(ws), type=CommandError).code == 3
        with pytest.raises(trio_websocket.HandshakeError):
            async with trio_websocket.open_websocket_url(endpoints.ws_url + "?streams=nope@depth"):
                pass
        async with httpx.AsyncClient(base_url=endpoints.rest_url) as http:
            assert (await http.get("/api/v3/depth?symbol=NOPE")).status_code == 400
            assert (await http.get("/api/v3/depth?symbol=ETHBTC&limit=x")).status_code == 400
            assert (await http.get("/api/v3/klines")).status_code == 404
            limited = await http.get("/api/v3/depth?symbol=ETHBTC&limit=7")
            snapshot = msgspec.json.decode(limited.content, type=DepthSnapshot)
            assert len(snapshot.bids) == 7 and len(snapshot.asks) == 7
