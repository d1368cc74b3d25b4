"""dragonflybot.v1, Keyrock and reflection on one server, through grpcio clients.

Two instruments (each its own aggregator and fan-out) behind one address, as the
app will run them: v1 clients name the instrument, the Keyrock service keeps
serving its default instrument unchanged, and grpcio's reflection client finds
every service without a .proto file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import grpc
import pytest
import trio
import trio.testing
from google.protobuf import descriptor_pool

from dragonflybot.aggregator import Aggregator
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueDown, VenueUpdate
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher
from dragonflybot.service.book_v1 import BookServiceV1, InstrumentSource
from dragonflybot.service.book_v1_encoding import (
    STATE_CODES,
    Book,
    BookRequest,
    ListInstrumentsRequest,
    ListInstrumentsResponse,
    VenueStatusRequest,
)
from dragonflybot.service.book_v1_encoding import VenueStatusUpdate as StatusUpdate
from dragonflybot.service.proto import reflection_v1_pb2
from dragonflybot.service.reflection import reflection_servicers
from dragonflybot.service.summary import to_summary

from .conftest import grpcio_take, view, wait_for

V1 = "/dragonflybot.v1.BookService/"
VENUES = ("binance", "bitstamp")


@attrs.define
class TwoInstruments:
    eth: trio.MemorySendChannel[VenueUpdate]
    btc: trio.MemorySendChannel[VenueUpdate]
    eth_books: SummaryPublisher
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def push(self, send: trio.MemorySendChannel[VenueUpdate], *updates: VenueUpdate) -> None:
        for update in updates:
            await send.send(update)
        await trio.testing.wait_all_tasks_blocked()


@asynccontextmanager
async def two_instruments() -> AsyncIterator[TwoInstruments]:
    """ETH-BTC (depth 5; also the Keyrock default) and BTC-USDT (depth 3) on one port."""
    eth_pub, btc_pub = SummaryPublisher(), SummaryPublisher()
    eth_send, eth_receive = trio.open_memory_channel[VenueUpdate](100)
    btc_send, btc_receive = trio.open_memory_channel[VenueUpdate](100)
    v1 = BookServiceV1(
        [
            InstrumentSource("ETH-BTC", VENUES, 5, eth_pub.books),
            InstrumentSource("BTC-USDT", VENUES, 3, btc_pub.books),
        ]
    )
    served = [BookSummaryService(eth_pub.books), HealthService(eth_pub.serving), v1]
    server = GrpcServer([*served, *reflection_servicers(served)], "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(Aggregator(5, eth_pub).run, eth_receive)
        await nursery.start(Aggregator(3, btc_pub).run, btc_receive)
        port = await nursery.start(server.serve)
        yield TwoInstruments(eth_send, btc_send, eth_pub, port)
        server.shutdown()
        with trio.move_on_after(5):
            await server.wait_closed()
        nursery.cancel_scope.cancel()


def stream_book(target: str, n: int, **request: Any) -> list[Any]:
    """The first ``n`` Books of a new StreamBook call."""
    with grpc.insecure_channel(target) as channel:
        method = channel.unary_stream(
            V1 + "StreamBook",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=Book.FromString,
        )
        call = method(BookRequest(**request), timeout=30)
        out = [next(call) for _ in range(n)]
        call.cancel()
        return out


def book_error(target: str, **request: Any) -> tuple[grpc.StatusCode, str]:
    try:
        stream_book(target, 1, **request)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the call did not fail")


async def test_one_port_streams_both_instruments_and_the_keyrock_book() -> None:
    async with two_instruments() as h:
        eth = (view("binance", "0.05", "0.051", levels=6), view("bitstamp", "0.0501", "0.0511"))
        btc = (view("binance", "60000", "60001", levels=4),)
        await h.push(h.eth, *eth)
        await h.push(h.btc, *btc)

        (eth_book,) = await trio.to_thread.run_sync(
            lambda: stream_book(h.target, 1, instrument="ETH-BTC")
        )
        (btc_book,) = await trio.to_thread.run_sync(
            lambda: stream_book(h.target, 1, instrument="btcusdt")
        )
        (summary,) = await trio.to_thread.run_sync(grpcio_take, h.target, 1)

        assert (eth_book.instrument, len(eth_book.bids)) == ("ETH-BTC", 5)
        assert eth_book.sequence >= 1
        assert eth_book.bids[0].venue == "bitstamp" and eth_book.bids[0].price_text == "0.0501"
        assert eth_book.spread_text == "0.0009"
        assert [(v.name, v.state) for v in eth_book.venues] == [
            ("binance", STATE_CODES["live"]),
            ("bitstamp", STATE_CODES["live"]),
        ]
        assert all(v.HasField("age") for v in eth_book.venues)
        assert eth_book.HasField("publish_time") and eth_book.HasField("receive_time")

        assert (btc_book.instrument, len(btc_book.bids)) == ("BTC-USDT", 3)
        assert btc_book.bids[0].price == 60000.0 and btc_book.bids[0].price_text == "60000"
        assert [(v.name, v.state) for v in btc_book.venues] == [
            ("binance", STATE_CODES["live"]),
            ("bitstamp", STATE_CODES["syncing"]),
        ]
        # Keyrock: the default instrument, wire-exact as before.
        assert summary == to_summary(merge(eth, 5))


async def test_depth_and_venue_filter_through_grpcio() -> None:
    async with two_instruments() as h:
        await h.push(
            h.eth, view("binance", "0.05", "0.051", levels=4), view("bitstamp", "0.0501", "0.0511")
        )
        (book,) = await trio.to_thread.run_sync(
            lambda: stream_book(h.target, 1, instrument="eth-btc", depth=2, venues=["binance"])
        )
        assert [b.venue for b in book.bids] == ["binance", "binance"]
        assert book.spread_text == "0.001"
        assert len(book.venues) == 2  # every venue's state, also those filtered out


@pytest.mark.parametrize(
    ("request_fields", "code", "text"),
    [
        ({"instrument": "DOGE-USD"}, grpc.StatusCode.NOT_FOUND, "ETH-BTC, BTC-USDT"),
        ({"instrument": "BTC-USDT", "depth": 4}, grpc.StatusCode.INVALID_ARGUMENT, "maximum of 3"),
        ({"instrument": "ETH-BTC", "venues": ["x"]}, grpc.StatusCode.INVALID_ARGUMENT, "binance"),
    ],
)
async def test_errors_carry_codes_and_what_is_allowed(
    request_fields: dict[str, Any], code: grpc.StatusCode, text: str
) -> None:
    async with two_instruments() as h:
        got_code, details = await trio.to_thread.run_sync(
            lambda: book_error(h.target, **request_fields)
        )
        assert got_code == code
        assert text in details


async def test_list_instruments_through_grpcio() -> None:
    def call(target: str) -> Any:
        with grpc.insecure_channel(target) as channel:
            method = channel.unary_unary(
                V1 + "ListInstruments",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=ListInstrumentsResponse.FromString,
            )
            return method(ListInstrumentsRequest(), timeout=10)

    async with two_instruments() as h:
        response = await trio.to_thread.run_sync(call, h.target)
        assert [(i.name, list(i.venues), i.max_depth) for i in response.instruments] == [
            ("ETH-BTC", list(VENUES), 5),
            ("BTC-USDT", list(VENUES), 3),
        ]


async def test_venue_status_streams_changes_as_they_happen() -> None:
    updates: list[Any] = []

    def follow(target: str, done: Callable[[Any], bool]) -> None:
        with grpc.insecure_channel(target) as channel:
            method = channel.unary_stream(
                V1 + "StreamVenueStatus",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=StatusUpdate.FromString,
            )
            call = method(VenueStatusRequest(instrument="ETH-BTC"), timeout=30)
            for update in call:
                updates.append(update)
                if done(update):
                    call.cancel()
                    return

    def is_stale(update: Any) -> bool:
        return update.venue.state == STATE_CODES["stale"]

    async with two_instruments() as h:
        await h.push(h.eth, view("binance", "1", "2"), view("bitstamp", "1", "2"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, follow, h.target, is_stale)
            await wait_for(lambda: len(updates) >= 2)
            await h.push(h.eth, VenueDown("bitstamp", "stale", "stale"))
        first = {(u.venue.name, u.venue.state) for u in updates[:2]}
        assert first == {("binance", STATE_CODES["live"]), ("bitstamp", STATE_CODES["live"])}
        last = updates[-1]
        assert (last.instrument, last.venue.name, last.venue.reason) == (
            "ETH-BTC",
            "bitstamp",
            "stale",
        )
        assert len(updates) == 3 and last.HasField("time")


async def test_grpcio_reflection_client_discovers_every_service() -> None:
    reflection = pytest.importorskip("grpc_reflection.v1alpha.proto_reflection_descriptor_database")

    def discover(target: str) -> tuple[list[str], Any, Any]:
        with grpc.insecure_channel(target) as channel:
            database = reflection.ProtoReflectionDescriptorDatabase(channel)
            services = list(database.get_services())
            pool = descriptor_pool.DescriptorPool(database)
            book = pool.FindServiceByName("dragonflybot.v1.BookService")
            keyrock = pool.FindServiceByName("orderbook.OrderbookAggregator")
            return services, book, keyrock

    async with two_instruments() as h:
        services, book, keyrock = await trio.to_thread.run_sync(discover, h.target)
    assert set(services) == {
        "dragonflybot.v1.BookService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "orderbook.OrderbookAggregator",
    }
    assert [m.name for m in book.methods] == ["StreamBook", "ListInstruments", "StreamVenueStatus"]
    assert book.methods_by_name["StreamBook"].output_type.fields_by_name["publish_time"]
    assert [m.name for m in keyrock.methods] == ["BookSummary"]


async def test_reflection_v1_through_grpcio_bidi() -> None:
    messages = reflection_v1_pb2

    def ask(target: str) -> list[Any]:
        with grpc.insecure_channel(target) as channel:
            method = channel.stream_stream(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=messages.ServerReflectionResponse.FromString,
            )
            requests = [
                messages.ServerReflectionRequest(list_services=""),
                messages.ServerReflectionRequest(file_containing_symbol="orderbook.Summary"),
                messages.ServerReflectionRequest(file_by_filename="no/such.proto"),
            ]
            return list(method(iter(requests), timeout=10))

    async with two_instruments() as h:
        listed, summary, missing = await trio.to_thread.run_sync(ask, h.target)
    assert "dragonflybot.v1.BookService" in [s.name for s in listed.list_services_response.service]
    assert len(summary.file_descriptor_response.file_descriptor_proto) == 1
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("unary_stream", V1 + "StreamBook"),
        ("unary_unary", V1 + "ListInstruments"),
        ("stream_stream", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
    ],
)
async def test_a_malformed_request_ends_its_stream_not_the_server(kind: str, path: str) -> None:
    def call(target: str) -> tuple[grpc.StatusCode, str]:
        garbage = b"\xff\xff\xff"
        with grpc.insecure_channel(target) as channel:
            method = getattr(channel, kind)(
                path, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            try:
                if kind == "stream_stream":
                    list(method(iter([garbage]), timeout=10))
                elif kind == "unary_stream":
                    list(method(garbage, timeout=10))
                else:
                    method(garbage, timeout=10)
            except grpc.RpcError as exc:
                return exc.code(), exc.details()
        raise AssertionError("a malformed request was answered")

    async with two_instruments() as h:
        await h.push(h.eth, view("binance", "1", "2"))
        code, details = await trio.to_thread.run_sync(call, h.target)
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "malformed request message")
        (book,) = await trio.to_thread.run_sync(
            lambda: stream_book(h.target, 1, instrument="ETH-BTC")
        )
        assert book.instrument == "ETH-BTC"
