"""The acceptor on a real socket, with a raw simplefix client and the autojump clock."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueView
from dragonflybot.fix.marketdata import (
    BookKind,
    Entry,
    MDRequest,
    SubscriptionType,
    apply_incremental,
    bbo_entries,
)

from .rig import CLIENT, Market, RawClient, make_server
from .test_marketdata import changes_of


def view(venue: str, bid: str, ask: str, amount: str = "1") -> VenueView:
    return VenueView(
        venue, (Level(parse(bid), parse(amount)),), (Level(parse(ask), parse(amount)),), None, 0
    )


def entries_of(msg_fields: tuple[tuple[int, str], ...], market_tag: int = 275) -> tuple[Entry, ...]:
    out = []
    current: dict[int, str] = {}
    for tag, value in msg_fields:
        if tag == 269 and current:
            out.append(current)
            current = {}
        if tag in (269, 270, 271, market_tag):
            current[tag] = value
    if current:
        out.append(current)
    return tuple(Entry(f[269], parse(f[270]), parse(f[271]), f[market_tag]) for f in out)


async def test_logon_snapshot_incrementals_and_logout(autojump_clock: trio.abc.Clock) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = await RawClient.connect(port)
        logon = await client.logon(heartbeat=5)
        assert logon.msg_type == "A" and logon.get(56) == CLIENT
        await client.subscribe("md1", update="1")
        snap = await client.receive_type("W")
        held = entries_of(snap.fields)
        assert held == (
            Entry("0", parse("10"), parse("1"), "binance"),
            Entry("1", parse("11"), parse("1"), "binance"),
        )
        book = market.publish(view("bitstamp", "10.5", "10.9", "2"))
        inc = await client.receive_type("X")
        held = apply_incremental(BookKind.BBO, held, changes_of(list(inc.body()), BookKind.BBO))
        assert list(held) == list(bbo_entries(book, _all(10)))
        # Quiet market: heartbeats keep the session up under the autojump clock.
        hb = await client.receive_type("0", within=20)
        assert hb.msg_type == "0"
        await client.send("5", [(58, "bye")])
        assert (await client.receive_type("5")).msg_type == "5"
        server.shutdown()
    assert server.stats.sessions == 1 and server.stats.snapshots == 1
    assert server.stats.incrementals == 1


def _all(depth: int) -> MDRequest:
    return MDRequest("x", SubscriptionType.SUBSCRIBE, "ETH-BTC", "ETH-BTC", BookKind.BBO, depth)


async def test_silent_client_is_tested_then_logged_out(autojump_clock: trio.abc.Clock) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = await RawClient.connect(port)
        await client.logon(heartbeat=2)
        test = await client.receive_type("1", within=10)
        assert test.get(112)
        logout = await client.receive_type("5", within=10)
        assert "heartbeat timeout" in (logout.get(58) or "")
        server.shutdown()


async def test_slow_client_is_conflated_not_queued(autojump_clock: trio.abc.Clock) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = await RawClient.connect(port)
        await client.logon()
        await client.subscribe("full", update="0")
        await client.receive_type("W")
        # Many states while the client reads nothing; then it reads: far fewer W than states.
        for i in range(2000):
            market.publish(view("binance", f"10.{i:04d}", "11", "1"))
            if i % 50 == 0:
                await trio.lowlevel.checkpoint()
        last_book = market.publish(view("binance", "9", "11"))
        got = []
        while True:
            msg = await client.receive_type("W")
            got.append(msg)
            if entries_of(msg.fields)[0].price == parse("9"):
                break
        assert len(got) < 2000
        assert entries_of(got[-1].fields) == bbo_entries(last_book, _all(10))
        server.shutdown()


async def test_shutdown_logs_sessions_out(autojump_clock: trio.abc.Clock) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = await RawClient.connect(port)
        await client.logon()
        server.shutdown()
        logout = await client.receive_type("5")
        assert logout.get(58) == "server shutting down"
        await client.send("5")
        await server.wait_closed()
    assert server.stats.active == 0


async def test_garbage_before_logon_and_a_dead_peer_cost_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    market = Market()
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"\x00garbage 8=FIX.4.4\x019=zz\x01")
        # No Logon in time: the server closes the connection.
        with trio.fail_after(30):
            assert await stream.receive_some(100) == b""
        other = await RawClient.connect(port)
        await other.logon()
        await other.stream.aclose()
        await trio.sleep(1)
        server.shutdown()
    assert server.stats.garbled >= 1


async def test_a_failing_connection_does_not_take_the_acceptor_down(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    server = make_server(market)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the market-data layer")

    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        with monkeypatch.context() as patch:
            patch.setattr("dragonflybot.fix.server.parse_md_request", broken)
            victim = await RawClient.connect(port)
            await victim.logon()
            await victim.subscribe("boom")
            with pytest.raises(EOFError):
                await victim.receive_type("W")
        with trio.fail_after(5):
            while server.stats.connection_errors == 0:  # noqa: ASYNC110 - a plain counter
                await trio.sleep(0.01)
        assert server.stats.connection_errors == 1
        survivor = await RawClient.connect(port)
        await survivor.logon()
        await survivor.subscribe("ok")
        assert (await survivor.receive_type("W")).get(262) == "ok"
        server.shutdown()
