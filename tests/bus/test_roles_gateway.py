"""A gateway serves what a single process serves, fed from the bus (``app_roles``).

Four ``run_roles`` calls over one real redis-server, each with its own bus clients
as separate processes would have: two feed roles (binance, bitstamp), an
aggregate role and a gateway (the serve role) with ``[fix]`` and a ladder. The
feeds send fixed multi-level views, so every answer can be compared exactly
with ``merge`` / ``build_ladder`` / ``cost_to_trade`` of those views:

- ``dragonflybot.v1`` on the gateway lists every instrument of the deployment
  with its venues, streams each (also the one that is not the address's
  default) and answers NOT_FOUND for one nobody publishes;
- ``LiquidityService`` (Ladder, CostToTrade) and the FIX acceptor (BBO and
  ladder MarketDataRequests) carry the true ladder, built by the gateway's own
  liquidity aggregator from the venue views on the bus;
- an aggregator that dies stops the books (NOT_SERVING) but not the ladder,
  whose health follows its own live venues;
- a feed process that dies (cancelled: no goodbye, its heartbeats stop) takes
  its venue out of the ladder within ``stale_after``, on gRPC and FIX alike;
- Redis going away empties the ladder (no live venue, no levels) and turns the
  health NOT_SERVING; when it returns, so does the ladder.

grpcio runs in worker threads and real time passes, so every wait is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import grpc
import trio
from fix.rig import CLIENT, SERVER, RawClient
from fix.test_server_sockets import entries_of

from dragonflybot.app import App
from dragonflybot.app_roles import Role, Roles, run_roles
from dragonflybot.config import AppConfig, BusSettings, InstrumentConfig, VenueConfig
from dragonflybot.core import fixed
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.liquidity import TradeSide, build_ladder, cost_to_trade
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed import FeedStats
from dragonflybot.fix.config import FixConfig, FixSessionEntry
from dragonflybot.fix.marketdata import (
    BookKind,
    Entry,
    MDRequest,
    SubscriptionType,
    bbo_entries,
    ladder_entries,
)
from dragonflybot.service.book_v1_encoding import (
    Book,
    BookRequest,
    ListInstrumentsRequest,
    ListInstrumentsResponse,
)
from dragonflybot.service.liquidity import SERVICE_NAME as LIQUIDITY
from dragonflybot.service.liquidity import cost_reply
from dragonflybot.service.proto import liquidity_v1_pb2
from dragonflybot.venues.registry import VENUES as REGISTRY
from dragonflybot.venues.spec import VenueSpec

from .redis_servers import RedisServer

pb: Any = liquidity_v1_pb2
BOOKS = "dragonflybot.v1.BookService"
V1 = f"/{BOOKS}/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"
ETH, BTC = "ETH-BTC", "BTC-USDT"
DEPTH, LADDER = 3, 4
STALE_AFTER = 1.0


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple(Level(parse(p), parse(a)) for p, a in pairs)


def venue_view(venue: str, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> VenueView:
    return VenueView(venue, bids, asks, None, time.monotonic_ns())


# Overlapping prices, so ladder totals are sums across venues and a ladder of
# LADDER prices reaches below the BBO merge's DEPTH.
VIEWS: dict[str, dict[str, VenueView]] = {
    BTC: {
        "binance": venue_view(
            "binance",
            levels(("100", "1"), ("99.5", "2"), ("99", "1.5"), ("98", "4")),
            levels(("101", "1"), ("101.5", "2"), ("102", "3"), ("103", "1")),
        ),
        "bitstamp": venue_view(
            "bitstamp",
            levels(("100", "0.5"), ("99", "3"), ("97", "2"), ("96", "1")),
            levels(("100.5", "0.25"), ("101", "2"), ("102.5", "1"), ("104", "5")),
        ),
    },
    ETH: {
        "binance": venue_view("binance", levels(("0.05", "10")), levels(("0.051", "8"))),
        "bitstamp": venue_view("bitstamp", levels(("0.0501", "3")), levels(("0.0512", "4"))),
    },
}


@attrs.define
class FixedFeeds:
    """Feed runners that send their venue's fixed view once, then stay quiet."""

    async def __call__(
        self,
        config: VenueConfig,
        instrument: str,
        depth: int,
        send: trio.MemorySendChannel[VenueUpdate],
        *,
        stats: FeedStats | None = None,
        venues: Mapping[str, VenueSpec] = REGISTRY,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        assert depth == LADDER  # the feeds publish views deep enough for the ladder
        async with send:
            await send.send(VIEWS[instrument][config.name])
            task_status.started()
            await trio.sleep_forever()


def deployment(redis: RedisServer) -> AppConfig:
    """The one configuration every role reads."""
    return AppConfig(
        instruments=[
            InstrumentConfig(name="ethbtc"),
            InstrumentConfig(name="btcusdt", listen="127.0.0.1:0"),
        ],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
        listen="127.0.0.1:0",
        depth=DEPTH,
        liquidity_depth=LADDER,
        fix=FixConfig(
            listen="127.0.0.1:0",
            sessions=[FixSessionEntry(sender_comp_id=SERVER, target_comp_id=CLIENT, password="pw")],
        ),
        bus=BusSettings(
            url=redis.url,
            prefix="gw",
            stale_after=STALE_AFTER,
            heartbeat_interval=0.2,
            refresh_after=0.2,
            timeout=1.0,
            backoff_cap=0.3,
        ),
        shutdown_grace=0.5,
    )


def roles_of(config: AppConfig, *roles: Role, venues: frozenset[str] | None = None) -> Roles:
    assert config.bus is not None
    return Roles(frozenset(roles), config.bus, venues)


async def start_roles(
    nursery: trio.Nursery, config: AppConfig, roles: Roles, scope: trio.CancelScope | None = None
) -> App:
    async def run(*, task_status: trio.TaskStatus[App]) -> None:
        with scope if scope is not None else trio.CancelScope():
            await run_roles(config, roles, feed_runner=FixedFeeds(), task_status=task_status)

    app: App = await nursery.start(run)
    return app


@attrs.define
class StreamReader:
    """A grpcio server stream read in a thread; ``latest`` is its newest message."""

    target: str
    open_call: Callable[[grpc.Channel], Any]
    latest: Any = None
    error: grpc.RpcError | None = None
    _call: Any = None
    _stop: threading.Event = attrs.field(factory=threading.Event)

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                self._call = self.open_call(channel)
                for message in self._call:
                    self.latest = message
                    if self._stop.is_set():
                        return
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()


@asynccontextmanager
async def streaming(target: str, open_call: Callable[[grpc.Channel], Any]) -> AsyncIterator[Any]:
    reader = StreamReader(target, open_call)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, reader.run)
        try:
            yield reader
        finally:
            reader.stop()
    assert reader.error is None, reader.error


def ladder_call(instrument: str) -> Callable[[grpc.Channel], Any]:
    def open_call(channel: grpc.Channel) -> Any:
        method = channel.unary_stream(
            f"/{LIQUIDITY}/Ladder",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.LadderUpdate.FromString,
        )
        return method(pb.LadderRequest(instrument=instrument), timeout=60)

    return open_call


def book_call(instrument: str) -> Callable[[grpc.Channel], Any]:
    def open_call(channel: grpc.Channel) -> Any:
        method = channel.unary_stream(
            V1 + "StreamBook",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=Book.FromString,
        )
        return method(BookRequest(instrument=instrument), timeout=60)

    return open_call


def ladder_rows(message: Any) -> tuple[list[Any], list[Any], list[str]]:
    def side(rows: Any) -> list[Any]:
        return [(r.price, r.amount, [(v.venue, v.amount) for v in r.venues]) for r in rows]

    return side(message.bids), side(message.asks), list(message.live_venues)


def expected_ladder(
    views: list[VenueView], depth: int = LADDER
) -> tuple[list[Any], list[Any], list[str]]:
    ladder = build_ladder(views, depth)

    def side(rows: Any) -> list[Any]:
        return [
            (
                fixed.to_str(r.price),
                fixed.to_str(r.amount),
                [(v, fixed.to_str(a)) for v, a in r.venues],
            )
            for r in rows
        ]

    return side(ladder.bids), side(ladder.asks), sorted(v.venue for v in views)


def book_rows(message: Any) -> list[Any]:
    return [
        [(lv.venue, lv.price_text, lv.amount_text) for lv in side]
        for side in (message.bids, message.asks)
    ]


def expected_book(views: list[VenueView]) -> list[Any]:
    book = merge(views, DEPTH)
    return [
        [(lv.venue, fixed.to_str(lv.price), fixed.to_str(lv.amount)) for lv in side]
        for side in (book.bids, book.asks)
    ]


async def until(
    predicate: Callable[[], bool], what: Callable[[], object], limit: float = 30
) -> None:
    """Poll a value a worker thread or reader task sets; fail with ``what()`` at ``limit``."""
    deadline = trio.current_time() + limit
    while not predicate():
        if trio.current_time() > deadline:
            raise AssertionError(what())
        await trio.sleep(0.02)


def unary(target: str, path: str, request: Any, reply: Callable[[bytes], Any]) -> Any:
    with grpc.insecure_channel(target) as channel:
        method = channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply
        )
        return method(request, timeout=10)


def first_status(target: str, open_call: Callable[[grpc.Channel], Any]) -> grpc.StatusCode:
    """The status a stream ends with before its first message (it must end so)."""
    with grpc.insecure_channel(target) as channel:
        try:
            next(iter(open_call(channel)))
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    raise AssertionError("answered")


def health(target: str, service: str) -> bytes:
    request = service.encode()
    raw = (b"\x0a" + bytes([len(request)]) + request) if request else b""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(HEALTH_CHECK, lambda r: r, lambda data: data)
        answer: bytes = check(raw, timeout=5)
        return answer


async def wait_health(target: str, service: str, want: bytes) -> None:
    # Generous: a full suite on two loaded cores can hold the roles' tasks for seconds.
    with trio.fail_after(30):
        while await trio.to_thread.run_sync(health, target, service) != want:  # noqa: ASYNC110
            await trio.sleep(0.05)


@attrs.define
class FixBooks:
    """The latest full refresh (35=W) of each request, read by a task."""

    client: RawClient
    books: dict[str, tuple[Entry, ...]] = attrs.field(factory=dict)

    async def read(self) -> None:
        while True:
            msg = await self.client.receive(within=30)
            req = msg.get(262)
            if msg.msg_type == "W" and req is not None:
                self.books[req] = entries_of(msg.fields, market_tag=5002 if req == "lad" else 275)


def fix_expected(views: list[VenueView]) -> dict[str, tuple[Entry, ...]]:
    bbo = MDRequest("bbo", SubscriptionType.SUBSCRIBE, book=BookKind.BBO, depth=DEPTH)
    lad = MDRequest("lad", SubscriptionType.SUBSCRIBE, book=BookKind.LADDER, depth=LADDER)
    return {
        "bbo": bbo_entries(merge(views, DEPTH), bbo),
        "lad": ladder_entries(build_ladder(views, LADDER), lad),
    }


async def test_a_gateway_serves_books_ladders_and_fix_from_the_bus(redis: RedisServer) -> None:
    config = deployment(redis)
    both = list(VIEWS[BTC].values())
    only_bitstamp = [VIEWS[BTC]["bitstamp"]]
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            gateway = await start_roles(nursery, config, roles_of(config, Role.SERVE))
            aggregator_process = trio.CancelScope()
            await start_roles(nursery, config, roles_of(config, Role.AGGREGATE), aggregator_process)
            binance_process = trio.CancelScope()
            await start_roles(
                nursery,
                config,
                roles_of(config, Role.FEED, venues=frozenset({"binance"})),
                binance_process,
            )
            await start_roles(
                nursery, config, roles_of(config, Role.FEED, venues=frozenset({"bitstamp"}))
            )
            api = gateway.servers[0]
            assert api.port == gateway.instruments[ETH].port  # ETH-BTC: the API's default
            target = f"127.0.0.1:{api.port}"
            assert gateway.fix_server is not None
            fix = FixBooks(await RawClient.connect(gateway.fix_server.port))
            assert (await fix.client.logon()).msg_type == "A"
            await fix.client.subscribe("bbo", update="0", book="0", symbol=BTC)
            await fix.client.subscribe("lad", update="0", book="1", symbol=BTC)
            nursery.start_soon(fix.read)

            # dragonflybot.v1 covers every instrument of the deployment, with its venues.
            listed = await trio.to_thread.run_sync(
                unary,
                target,
                V1 + "ListInstruments",
                ListInstrumentsRequest(),
                ListInstrumentsResponse.FromString,
            )
            assert [(i.name, list(i.venues), i.max_depth) for i in listed.instruments] == [
                (ETH, ["binance", "bitstamp"], DEPTH),
                (BTC, ["binance", "bitstamp"], DEPTH),
            ]
            # An instrument nobody publishes: NOT_FOUND, as in a single process.
            for open_call in (book_call("DOGE-USD"), ladder_call("DOGE-USD")):
                code = await trio.to_thread.run_sync(first_status, target, open_call)
                assert code == grpc.StatusCode.NOT_FOUND

            async with (
                streaming(target, ladder_call(BTC)) as ladder,
                streaming(target, book_call(BTC)) as book,
                streaming(target, book_call(ETH)) as eth_book,
            ):
                # The true merge, the true ladder (deeper than the merge) and FIX alike.
                await until(
                    lambda: (
                        book.latest is not None and book_rows(book.latest) == expected_book(both)
                    ),
                    lambda: book.latest,
                )
                assert [v.name for v in book.latest.venues] == ["binance", "bitstamp"]
                eth_views = list(VIEWS[ETH].values())
                await until(
                    lambda: (
                        eth_book.latest is not None
                        and book_rows(eth_book.latest) == expected_book(eth_views)
                    ),
                    lambda: eth_book.latest,
                )
                await until(
                    lambda: (
                        ladder.latest is not None
                        and ladder_rows(ladder.latest) == expected_ladder(both)
                    ),
                    lambda: (ladder.latest, expected_ladder(both)),
                )
                assert len(ladder.latest.bids) == LADDER > DEPTH
                await until(lambda: fix.books == fix_expected(both), lambda: fix.books)
                for side, pb_side, quantity in (
                    (TradeSide.BUY, pb.SIDE_BUY, "4.5"),
                    (TradeSide.SELL, pb.SIDE_SELL, "100"),  # more than there is
                ):
                    reply = await trio.to_thread.run_sync(
                        unary,
                        target,
                        f"/{LIQUIDITY}/CostToTrade",
                        pb.CostToTradeRequest(instrument=BTC, side=pb_side, quantity=quantity),
                        pb.CostToTradeReply.FromString,
                    )
                    assert reply == cost_reply(cost_to_trade(both, side, parse(quantity)), BTC)
                assert await trio.to_thread.run_sync(health, target, LIQUIDITY) == SERVING

                # The aggregator dies: the books stop (NOT_SERVING) but the ladder, built
                # here from the feeds' views, stays true and its service SERVING.
                aggregator_process.cancel()
                await wait_health(target, BOOKS, NOT_SERVING)
                assert await trio.to_thread.run_sync(health, target, LIQUIDITY) == SERVING
                assert ladder_rows(ladder.latest) == expected_ladder(both)
                await start_roles(nursery, config, roles_of(config, Role.AGGREGATE))

                # The binance feed process dies without a word: its heartbeats stop, and
                # within stale_after its venue leaves the ladder too (gRPC and FIX).
                binance_process.cancel()
                await until(
                    lambda: ladder_rows(ladder.latest) == expected_ladder(only_bitstamp),
                    lambda: ladder.latest,
                )
                await until(lambda: fix.books == fix_expected(only_bitstamp), lambda: fix.books)
                assert book_rows(book.latest) == expected_book(only_bitstamp)

                # Redis goes away: no live venue and no levels in the ladder, NOT_SERVING;
                # it comes back and so does the ladder.
                await redis.stop()
                await until(
                    lambda: ladder_rows(ladder.latest) == ([], [], []), lambda: ladder.latest
                )
                await until(lambda: fix.books == fix_expected([]), lambda: fix.books)
                assert await trio.to_thread.run_sync(health, target, LIQUIDITY) == NOT_SERVING
                await redis.start()
                await until(
                    lambda: ladder_rows(ladder.latest) == expected_ladder(only_bitstamp),
                    lambda: ladder.latest,
                )
            nursery.cancel_scope.cancel()


async def test_aggregate_and_serve_in_one_process_tap_the_aggregators_input(
    redis: RedisServer,
) -> None:
    """``aggregate`` + ``serve``: the ladder reads the views the aggregator reads (as in
    ``run_app``), and the book is both served here and published for other gateways."""
    config = deployment(redis)
    both = list(VIEWS[BTC].values())
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            app = await start_roles(nursery, config, roles_of(config, Role.AGGREGATE, Role.SERVE))
            other_gateway = await start_roles(nursery, config, roles_of(config, Role.SERVE))
            await start_roles(nursery, config, roles_of(config, Role.FEED))
            target = f"127.0.0.1:{app.servers[0].port}"
            async with streaming(target, ladder_call(BTC)) as ladder:
                await until(
                    lambda: (
                        ladder.latest is not None
                        and ladder_rows(ladder.latest) == expected_ladder(both)
                    ),
                    lambda: ladder.latest,
                )
            other = f"127.0.0.1:{other_gateway.servers[0].port}"
            async with streaming(other, book_call(BTC)) as book:
                await until(
                    lambda: (
                        book.latest is not None and book_rows(book.latest) == expected_book(both)
                    ),
                    lambda: book.latest,
                )
            nursery.cancel_scope.cancel()
