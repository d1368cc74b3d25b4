"""A plain WebSocket + httpx client against simulated Bitstamp, decoded with the feed Structs."""

from __future__ import annotations

import itertools

import httpx
import msgspec
import trio_websocket

from dragonflybot.core.book import FullDepthBook
from dragonflybot.core.fixed import parse
from dragonflybot.sim.config import WsBackend
from dragonflybot.venues.base import parse_levels
from dragonflybot.venues.bitstamp import BookData, Envelope, ErrorData, RestOrderBook

from .conftest import receive, receive_n, running, send_json

DIFF = "diff_order_book_ethbtc"
TOP = "order_book_ethbtc"


def subscribe(channel: str) -> dict[str, object]:
    return {"event": "bts:subscribe", "data": {"channel": channel}}


def book_data(text: str, channel: str) -> BookData:
    envelope = msgspec.json.decode(text, type=Envelope)
    assert (envelope.event, envelope.channel) == ("data", channel)
    data = msgspec.json.decode(envelope.data, type=BookData)
    assert data.timestamp == data.microtimestamp[:-6]
    return data


async def test_subscribe_heartbeat_error_and_increasing_microtimestamps(
    ws_backend: WsBackend,
) -> None:
    async with (
        running(venues=("bitstamp",), rate=500.0, ws_backend=ws_backend) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws,
    ):
        await send_json(ws, {"event": "bts:subscribe", "data": {"channel": "order_book_xyz"}})
        error = msgspec.json.decode(await receive(ws), type=Envelope)
        assert error.event == "bts:error"
        assert msgspec.json.decode(error.data, type=ErrorData).message
        await send_json(ws, subscribe(DIFF))
        ack = msgspec.json.decode(await receive(ws), type=Envelope)
        assert (ack.event, ack.channel) == ("bts:subscription_succeeded", DIFF)
        diffs = [book_data(t, DIFF) for t in await receive_n(ws, 20)]
        await send_json(ws, {"event": "bts:heartbeat"})
        seen = [await receive(ws) for _ in range(30)]
    beats = [msgspec.json.decode(t, type=Envelope) for t in seen if "heartbeat" in t]
    assert [(b.event, bytes(b.data)) for b in beats] == [("bts:heartbeat", b'{"status":"success"}')]
    diffs += [book_data(t, DIFF) for t in seen if "heartbeat" not in t]
    stamps = [int(d.microtimestamp) for d in diffs]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    for diff in diffs:
        assert diff.bids or diff.asks
        for price, amount in diff.bids + diff.asks:
            parse(price), parse(amount)


async def test_rest_snapshot_plus_newer_diffs_equals_the_simulator_book(
    ws_backend: WsBackend,
) -> None:
    async with running(venues=("bitstamp",), rate=100.0, depth=80, ws_backend=ws_backend) as sim:
        endpoints = sim.endpoints["bitstamp"]
        async with (
            trio_websocket.open_websocket_url(endpoints.ws_url) as ws,
            httpx.AsyncClient(base_url=endpoints.rest_url) as http,
        ):
            await send_json(ws, subscribe(DIFF))
            await receive(ws)  # ack
            buffered = [book_data(t, DIFF) for t in await receive_n(ws, 5)]
            for path in ("/api/v2/order_book/ethbtc/", "/api/v2/order_book/ethbtc"):
                response = await http.get(path)
                assert response.status_code == 200
            snapshot = msgspec.json.decode(response.content, type=RestOrderBook)
            buffered += [book_data(t, DIFF) for t in await receive_n(ws, 20)]
            sim.pause()
            await sim.flushed()
            book = FullDepthBook()
            book.load(parse_levels(snapshot.bids), parse_levels(snapshot.asks))
            last = int(snapshot.microtimestamp)
            applied = 0
            while True:
                for diff in buffered:
                    if int(diff.microtimestamp) <= last:
                        continue
                    book.apply(parse_levels(diff.bids), parse_levels(diff.asks))
                    last = int(diff.microtimestamp)
                    applied += 1
                if book.top_bids(500) == sim.published("bitstamp", "ethbtc").top_bids(500):
                    break
                buffered = [book_data(await receive(ws), DIFF)]
            assert applied > 0
            current = sim.book("bitstamp", "ethbtc")
            assert book.top_bids(500) == current.top_bids(500)
            assert book.top_asks(500) == current.top_asks(500)
            again = msgspec.json.decode(
                (await http.get("/api/v2/order_book/ethbtc/")).content, type=RestOrderBook
            )
            assert int(again.microtimestamp) == last
            assert (await http.get("/api/v2/order_book/dogeusd/")).status_code == 404


async def test_top_100_channel_matches_the_published_book() -> None:
    async with (
        running(venues=("bitstamp",), rate=20.0, depth=150) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws,
    ):
        await send_json(ws, subscribe(TOP))
        await receive(ws)
        await receive(ws)
        sim.pause()
        sim.advance(2)
        await sim.flushed()
        frames = [book_data(t, TOP) for t in await receive_n(ws, 2)]
    top = frames[-1]
    assert len(top.bids) == 100 and len(top.asks) == 100
    published = sim.published("bitstamp", "ethbtc")
    assert parse_levels(top.bids) == list(published.top_bids(100))
    assert parse_levels(top.asks) == list(published.top_asks(100))
