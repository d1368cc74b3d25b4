"""run_feed over real sockets on 127.0.0.1 against scripted venues (autojump clock).

Each test plays the venue side frame by frame (``scripted_venue``) and watches
what reaches the aggregator's channel and the feed's counters.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing
from scripted_venue import WAIT, RestBook, ScriptedVenue, json_response, start_venue

from dragonflybot.client import Backoff
from dragonflybot.config import VenueConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.errors import SubscriptionError
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.feed import runner as feed_runner

PARTIAL = "ethbtc@depth20@100ms"


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple(Level(parse(p), parse(a)) for p, a in pairs)


def partial_frame(update_id: int, bids: Any, asks: Any) -> dict[str, Any]:
    return {"stream": PARTIAL, "data": {"lastUpdateId": update_id, "bids": bids, "asks": asks}}


@attrs.define
class MiniBinance:
    """A tiny diff-depth market: the venue's true book, its update id, frames and REST."""

    last_id: int = 100
    bids: dict[str, str] = attrs.field(factory=lambda: {"1.00": "1"})
    asks: dict[str, str] = attrs.field(factory=lambda: {"2.00": "1"})

    def update(self, bids: Any = (), asks: Any = ()) -> dict[str, Any]:
        self.last_id += 1
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, amount in changes:
                if parse(amount) == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
        data = {"e": "depthUpdate", "E": self.last_id, "s": "ETHBTC", "U": self.last_id}
        data |= {"u": self.last_id, "b": [list(x) for x in bids], "a": [list(x) for x in asks]}
        return {"stream": "ethbtc@depth@100ms", "data": data}

    def rest(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v3/depth"
        assert dict(request.url.params) == {"symbol": "ETHBTC", "limit": "1000"}
        return json_response(
            {
                "lastUpdateId": self.last_id,
                "bids": [[p, a] for p, a in self.bids.items()],
                "asks": [[p, a] for p, a in self.asks.items()],
            }
        )

    def top(self) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        bids = sorted(((parse(p), parse(a)) for p, a in self.bids.items()), reverse=True)
        asks = sorted((parse(p), parse(a)) for p, a in self.asks.items())
        return tuple(Level(*x) for x in bids[:5]), tuple(Level(*x) for x in asks[:5])


@attrs.define
class Feed:
    """A feed started in the background, so the test can play the venue meanwhile."""

    stats: FeedStats
    updates: trio.MemoryReceiveChannel[VenueUpdate]
    started: trio.Event

    async def next(self) -> VenueUpdate:
        with trio.fail_after(WAIT):
            return await self.updates.receive()

    async def view(self) -> VenueView:
        update = await self.next()
        assert isinstance(update, VenueView), update
        return update

    async def down(self) -> VenueDown:
        update = await self.next()
        assert isinstance(update, VenueDown), update
        return update

    async def until(self, condition: Callable[[], bool]) -> None:
        """Poll the feed's counters (plain ints by design: there is no event to wait on)."""
        with trio.fail_after(WAIT):
            while not condition():  # noqa: ASYNC110
                await trio.sleep(0.01)


def start_feed(
    nursery: trio.Nursery,
    config: VenueConfig,
    *,
    depth: int = 5,
    rest: Any = None,
    buffer: int = 100,
) -> Feed:
    send, recv = trio.open_memory_channel[VenueUpdate](buffer)
    feed = Feed(FeedStats(), recv, trio.Event())

    async def starter() -> None:
        await nursery.start(
            partial(run_feed, config, "ethbtc", depth, send, stats=feed.stats, rest_client=rest)
        )
        feed.started.set()

    nursery.start_soon(starter)
    return feed


def binance_config(venue: ScriptedVenue, **kw: Any) -> VenueConfig:
    return VenueConfig(
        name="binance", ws_url=venue.url("/stream"), rest_url="http://rest.test", **kw
    )


def bitstamp_config(venue: ScriptedVenue, **kw: Any) -> VenueConfig:
    return VenueConfig(name="bitstamp", ws_url=venue.url("/"), rest_url="http://rest.test", **kw)


@asynccontextmanager
async def venue_and_nursery() -> AsyncIterator[tuple[trio.Nursery, ScriptedVenue]]:
    async with trio.open_nursery() as nursery:
        venue = await start_venue(nursery)
        yield nursery, venue
        nursery.cancel_scope.cancel()


class CeilingBackoff(Backoff):
    """Deterministic backoff (always the ceiling) that records every delay it gives."""

    delays: list[float] = []

    def next_delay(self) -> float:
        delay = self.ceiling()
        super().next_delay()
        CeilingBackoff.delays.append(delay)
        return delay


@pytest.fixture
def ceiling_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    CeilingBackoff.delays = []
    monkeypatch.setattr(feed_runner, "Backoff", CeilingBackoff)
    return CeilingBackoff.delays


# --- subscribe, ack, forwarding --------------------------------------------------------


async def test_binance_snapshot_mode_forwards_only_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue), depth=2)
        conn = await venue.next_conn()
        assert await conn.binance_subscribe() == [PARTIAL]
        with trio.fail_after(WAIT):
            await feed.started.wait()
        assert feed.stats.state == "live" and feed.stats.connects == 1
        bids = [["0.05", "1"], ["0.04", "2"], ["0.03", "3"]]
        await conn.send(partial_frame(1, bids, [["0.06", "1"]]))
        view = await feed.view()
        assert (view.venue, view.event_time_ms) == ("binance", None)
        assert view.bids == levels(("0.05", "1"), ("0.04", "2")) and view.recv_ns > 0
        # A change below the top 2 is not forwarded; a change in it is.
        await conn.send(partial_frame(2, [*bids[:2], ["0.03", "9"]], [["0.06", "1"]]))
        await conn.send(partial_frame(3, bids, [["0.059", "1"]]))
        view = await feed.view()
        assert view.asks == levels(("0.059", "1"))
        assert (feed.stats.frames, feed.stats.parsed, feed.stats.forwarded) == (4, 4, 2)
        assert feed.stats.sync.applied == 3


async def test_bitstamp_snapshot_mode_heartbeats_keep_it_live(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        config = bitstamp_config(venue, heartbeat_interval=1.0, stale_after=3.0)
        feed = start_feed(nursery, config)
        conn = await venue.next_conn()
        assert await conn.bitstamp_subscribe() == "order_book_ethbtc"
        data = {"microtimestamp": "1700000000123456", "bids": [["0.05", "1"]], "asks": []}
        await conn.send({"event": "data", "channel": "order_book_ethbtc", "data": data})
        view = await feed.view()
        assert view.event_time_ms == 1700000000123 and view.bids == levels(("0.05", "1"))
        # Ten virtual seconds of heartbeats, each answered: never stale.
        for _ in range(10):
            assert await conn.recv_json() == {"event": "bts:heartbeat"}
            reply = {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}
            await conn.send(reply)
        await feed.until(lambda: feed.stats.ignored == 10)  # the ten replies
        assert feed.stats.stale_periods == 0 and feed.stats.state == "live"


@pytest.mark.parametrize(
    ("venue_name", "reply", "stream"),
    [
        ("binance", {"code": 2, "msg": "Invalid request: unknown stream", "id": 1}, PARTIAL),
        (
            "bitstamp",
            {"event": "bts:error", "channel": "", "data": {"code": None, "message": "Bad pair"}},
            "order_book_ethbtc",
        ),
    ],
)
async def test_rejected_subscription_fails_start_naming_venue_and_stream(
    autojump_clock: trio.testing.MockClock, venue_name: str, reply: Any, stream: str
) -> None:
    async with venue_and_nursery() as (nursery, venue):

        async def play() -> None:
            conn = await venue.next_conn()
            if venue_name == "binance":
                await conn.binance_subscribe(reply=reply)
            else:
                await conn.bitstamp_subscribe(reply=reply)

        nursery.start_soon(play)
        config = binance_config(venue) if venue_name == "binance" else bitstamp_config(venue)
        send, recv = trio.open_memory_channel[VenueUpdate](1)
        stats = FeedStats()
        with pytest.raises(SubscriptionError) as info:
            await nursery.start(partial(run_feed, config, "ethbtc", 5, send, stats=stats))
        message = str(info.value)
        assert message.startswith(f"{venue_name}:") and stream in message
        assert ("Invalid request" if venue_name == "binance" else "Bad pair") in message
        assert stats.state == "down"
        with pytest.raises(trio.EndOfChannel):
            recv.receive_nowait()  # run_feed closed its channel


async def test_missing_ack_times_out_and_retries(
    autojump_clock: trio.testing.MockClock, ceiling_backoff: list[float]
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue, ack_timeout=5.0, backoff_base=2.0))
        first = await venue.next_conn()
        await first.recv_json()  # the SUBSCRIBE, never answered
        second = await venue.next_conn()
        await second.binance_subscribe()
        with trio.fail_after(WAIT):
            await feed.started.wait()
        assert feed.stats.reconnects == 1 and ceiling_backoff == [2.0]
        assert "no acknowledgement of ethbtc@depth20@100ms within 5 s" in str(feed.stats.last_error)


# --- diff mode: sync, disconnect, gap --------------------------------------------------


async def test_binance_diff_disconnect_resyncs_from_new_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    market = MiniBinance()
    rest = RestBook(market.rest)
    async with rest.client() as client, venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue, mode="depth"), rest=client)
        conn = await venue.next_conn()
        assert await conn.binance_subscribe() == ["ethbtc@depth@100ms"]
        await conn.send(market.update(bids=[("1.10", "2")]))
        view = await feed.view()
        with trio.fail_after(WAIT):
            await feed.started.wait()
        assert (view.bids, view.asks) == market.top()
        await conn.send(market.update(bids=[("1.50", "1")], asks=[("2.00", "0")]))
        view = await feed.view()
        assert (view.bids, view.asks) == market.top() and view.event_time_ms == market.last_id
        await conn.close()
        down = await feed.down()
        assert down.venue == "binance" and down.reason.startswith("disconnected")
        # The market moves while we are away; the next snapshot carries it.
        market.update(bids=[("1.50", "0"), ("0.90", "4")])
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(market.update(asks=[("2.50", "3")]))
        view = await feed.view()
        assert (view.bids, view.asks) == market.top()
        stats = feed.stats
        assert (stats.reconnects, stats.sync.snapshots, stats.gaps) == (1, 2, 0)
        assert stats.state == "live" and len(rest.requests) == 2


async def test_binance_sequence_gap_resyncs(autojump_clock: trio.testing.MockClock) -> None:
    market = MiniBinance()
    rest = RestBook(market.rest)
    async with rest.client() as client, venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue, mode="depth"), rest=client)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(market.update(bids=[("1.10", "2")]))
        await feed.view()
        market.update(bids=[("1.20", "7")])  # never sent: the feed misses it
        await conn.send(market.update(asks=[("1.90", "1")]))
        down = await feed.down()
        assert down.reason.startswith("resync: sequence gap")
        view = await feed.view()
        assert (view.bids, view.asks) == market.top()
        assert view.bids[0] == Level(parse("1.20"), parse("7"))
        stats = feed.stats
        assert (stats.gaps, stats.resyncs, stats.reconnects) == (1, 1, 0)
        assert stats.sync.snapshots == 2 and stats.state == "live"
        # And it keeps applying afterwards.
        await conn.send(market.update(bids=[("1.25", "1")]))
        view = await feed.view()
        assert (view.bids, view.asks) == market.top()


async def test_bitstamp_request_reconnect_reconnects_at_once_and_resnapshots(
    autojump_clock: trio.testing.MockClock, ceiling_backoff: list[float]
) -> None:
    book = {"micros": 1_000_000, "bids": [["1.0", "1"]], "asks": [["2.0", "1"]]}

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v2/order_book/ethbtc/"
        return json_response(
            {"microtimestamp": str(book["micros"]), "bids": book["bids"], "asks": book["asks"]}
        )

    rest = RestBook(answer)
    async with rest.client() as client, venue_and_nursery() as (nursery, venue):
        config = bitstamp_config(venue, mode="depth", backoff_base=100.0, backoff_cap=100.0)
        feed = start_feed(nursery, config, rest=client)
        conn = await venue.next_conn()
        assert await conn.bitstamp_subscribe() == "diff_order_book_ethbtc"
        diff = {"microtimestamp": "1000000", "bids": [["1.0", "1"]], "asks": []}
        await conn.send({"event": "data", "channel": "diff_order_book_ethbtc", "data": diff})
        view = await feed.view()
        assert view.bids == levels(("1.0", "1")) and view.event_time_ms == 1000
        asked_at = trio.current_time()
        await conn.send({"event": "bts:request_reconnect", "channel": "", "data": ""})
        assert (await feed.down()).reason.startswith("disconnected")
        conn = await venue.next_conn()
        assert trio.current_time() - asked_at < 100.0  # no backoff delay was slept
        assert ceiling_backoff == []
        await conn.bitstamp_subscribe()
        book.update(micros=3_000_000, bids=[["1.1", "5"]])
        diff = {"microtimestamp": "2000000", "bids": [["1.0", "2"]], "asks": []}
        await conn.send({"event": "data", "channel": "diff_order_book_ethbtc", "data": diff})
        view = await feed.view()
        # The fresh snapshot is newer than the buffered diff: the diff is dropped.
        assert view.bids == levels(("1.1", "5")) and view.asks == levels(("2.0", "1"))
        assert (feed.stats.reconnects, feed.stats.sync.snapshots) == (1, 2)
        assert feed.stats.sync.dropped == 2  # first diff (== snapshot time) and the second


@pytest.mark.parametrize(
    "shutdown",
    [
        {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}},
        {"e": "serverShutdown", "E": 1},
    ],
)
async def test_binance_server_shutdown_reconnects_at_once(
    autojump_clock: trio.testing.MockClock, ceiling_backoff: list[float], shutdown: Any
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        config = binance_config(venue, backoff_base=100.0, backoff_cap=100.0)
        feed = start_feed(nursery, config)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(partial_frame(1, [["0.05", "1"]], []))
        await feed.view()
        asked_at = trio.current_time()
        await conn.send(shutdown)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        assert trio.current_time() - asked_at < 100.0 and ceiling_backoff == []
        await conn.send(partial_frame(2, [["0.05", "1"]], []))
        assert isinstance(await feed.next(), VenueDown)
        assert (await feed.view()).bids == levels(("0.05", "1"))
        assert "serverShutdown" in str(feed.stats.last_error)


# --- malformed, stale, dead, backoff ---------------------------------------------------


async def test_malformed_frames_skipped_counted_logged_once_per_burst(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dragonflybot.feed")
    async with venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue))
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(partial_frame(1, [["0.05", "1"]], [["0.06", "1"]]))
        await feed.view()
        garbage = [
            "{not json",
            partial_frame(2, [["0.05", "-1"]], []),
            partial_frame(3, [["abc", "1"]], []),
            {"stream": PARTIAL, "data": {"lastUpdateId": "x"}},
            "x" * 1000,
        ]
        for frame in garbage:
            await conn.send(frame)
        await conn.send(partial_frame(4, [["0.051", "1"]], [["0.06", "1"]]))
        view = await feed.view()
        assert view.bids == levels(("0.051", "1"))
        stats = feed.stats
        assert (stats.malformed, stats.parsed, stats.frames) == (5, 3, 8)
        reports = [r for r in caplog.records if "malformed frame" in r.getMessage()]
        assert len(reports) == 1
        assert "binance" in reports[0].getMessage() and "{not json" in reports[0].getMessage()
        # A later burst is reported again, with the count held back before it.
        await trio.sleep(2)
        await conn.send("[]")
        await feed.until(lambda: feed.stats.malformed == 6)
        reports = [r for r in caplog.records if "malformed frame" in r.getMessage()]
        assert len(reports) == 2 and "4 more since the last report" in reports[1].getMessage()
        long = [r for r in caplog.records if "xxxx" in r.getMessage()]
        assert long == []  # the 1000-char frame was in the suppressed part of the burst


async def test_stalled_venue_goes_stale_and_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue, stale_after=2.0, dead_after=60.0))
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(partial_frame(1, [["0.05", "1"]], []))
        first = await feed.view()
        await trio.sleep(5)
        assert await feed.down() == VenueDown("binance", "stale", "stale")
        assert feed.stats.state == "stale" and feed.stats.stale_periods == 1
        # Same levels as before: still sent, the aggregator had excluded the venue.
        await conn.send(partial_frame(2, [["0.05", "1"]], []))
        again = await feed.view()
        assert again.bids == first.bids and again.recv_ns > first.recv_ns
        assert feed.stats.state == "live" and feed.stats.reconnects == 0


async def test_silent_connection_is_presumed_dead_and_replaced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        config = binance_config(venue, stale_after=1.0, dead_after=4.0, backoff_base=0.1)
        feed = start_feed(nursery, config)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        await conn.send(partial_frame(1, [["0.05", "1"]], []))
        await feed.view()
        assert (await feed.down()).reason == "stale"
        second = await venue.next_conn()
        await second.binance_subscribe()
        assert feed.stats.reconnects == 1
        assert "presumed dead" in str(feed.stats.last_error)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_venue_backs_off_then_connects_and_resets_after_healthy_period(
    autojump_clock: trio.testing.MockClock, ceiling_backoff: list[float]
) -> None:
    port = _free_port()
    config = VenueConfig(
        name="binance",
        ws_url=f"ws://127.0.0.1:{port}/stream",
        backoff_base=1.0,
        backoff_cap=8.0,
        healthy_after=30.0,
        stale_after=100.0,
        dead_after=1000.0,
        # No pings while quiet: trio-websocket's server (the scripted venue) crashes when a
        # ping reaches a connection it is closing (python-trio/trio-websocket#184), and
        # under the autojump clock the close lands exactly on a ping.
        heartbeat_interval=1000.0,
    )
    async with trio.open_nursery() as nursery:
        feed = start_feed(nursery, config)
        await feed.until(lambda: len(ceiling_backoff) >= 5)
        assert ceiling_backoff[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]
        assert feed.stats.state in ("down", "connecting") and not feed.started.is_set()
        venue = await start_venue(nursery, port)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        with trio.fail_after(WAIT):
            await feed.started.wait()
        retries = len(ceiling_backoff)
        # Healthy for longer than healthy_after: the next reconnect is immediate and the
        # backoff starts over from the base.
        await trio.sleep(40)
        await conn.close()
        conn = await venue.next_conn()
        assert len(ceiling_backoff) == retries
        await conn.close()
        conn = await venue.next_conn()
        assert ceiling_backoff[retries:] == [1.0]
        nursery.cancel_scope.cancel()


# --- aggregator back-pressure and shutdown ---------------------------------------------


async def test_full_aggregator_channel_never_blocks_the_feed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        feed = start_feed(nursery, binance_config(venue), buffer=0)
        conn = await venue.next_conn()
        await conn.binance_subscribe()
        for i in range(1, 51):
            await conn.send(partial_frame(i, [[f"0.{i:03d}", "1"]], []))
        # Nobody reads the aggregator channel, yet every frame gets processed.
        await feed.until(lambda: feed.stats.frames == 51)
        assert feed.stats.forwarded == 50
        first = await feed.view()  # the one the forwarder was holding
        latest = await feed.view()  # the newest: everything between was conflated
        assert first.bids == levels(("0.001", "1"))
        assert latest.bids == levels(("0.050", "1"))
        assert feed.stats.conflated == 48


async def test_run_feed_closes_its_channel_when_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with venue_and_nursery() as (nursery, venue):
        send, recv = trio.open_memory_channel[VenueUpdate](10)
        with trio.CancelScope() as scope:

            async def play() -> None:
                conn = await venue.next_conn()
                await conn.binance_subscribe()
                await conn.send(partial_frame(1, [["0.05", "1"]], []))

            nursery.start_soon(play)
            async with trio.open_nursery() as inner:
                await inner.start(run_feed, binance_config(venue), "ethbtc", 5, send)
                update = await recv.receive()
                assert isinstance(update, VenueView)
                scope.cancel()
        with pytest.raises(trio.EndOfChannel):
            await recv.receive()


async def test_bitstamp_diff_survives_rest_errors_and_refetches_old_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def snapshot(micros: int, bids: Any) -> httpx.Response:
        return json_response({"microtimestamp": str(micros), "bids": bids, "asks": []})

    answers = [
        httpx.Response(500, content=b"oops"),
        httpx.Response(429, headers={"Retry-After": "7"}, content=b"slow down"),
        snapshot(500, [["1.0", "1"]]),  # older than the first buffered diff: fetched again
        snapshot(1500, [["1.0", "3"], ["0.8", "1"]]),
    ]
    rest = RestBook(lambda request: answers.pop(0))
    async with rest.client() as client, venue_and_nursery() as (nursery, venue):
        config = bitstamp_config(venue, mode="depth", backoff_base=1.0, backoff_cap=2.0)
        feed = start_feed(nursery, config, rest=client)
        conn = await venue.next_conn()
        await conn.bitstamp_subscribe()
        started_at = trio.current_time()
        for micros, bids in ((1000, [["1.0", "2"]]), (2000, [["0.8", "0"], ["0.9", "2"]])):
            data = {"microtimestamp": str(micros), "bids": bids, "asks": []}
            await conn.send({"event": "data", "channel": "diff_order_book_ethbtc", "data": data})
        view = await feed.view()
        with trio.fail_after(WAIT):
            await feed.started.wait()
        assert view.bids == levels(("1.0", "3"), ("0.9", "2")) and view.event_time_ms == 2
        stats = feed.stats
        assert (stats.snapshot_requests, stats.snapshot_failures) == (4, 2)
        assert (stats.sync.refetches, stats.sync.dropped, stats.sync.applied) == (1, 1, 1)
        assert trio.current_time() - started_at >= 7.0  # Retry-After was obeyed
        assert not answers
