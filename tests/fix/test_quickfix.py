"""The acceptor against QuickFIX (quickfix-tls), an independent FIX engine, on real sockets.

QuickFIX validates everything it receives against the acceptor's data
dictionary (``dragonflybot/fix/spec``), so these tests also show that every
message the acceptor sends is well-formed FIX 4.4 as the dictionary declares it.
Real time (QuickFIX has its own threads and clock): HeartBtInt is 1 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from dragonflybot.core.fixed import parse
from dragonflybot.core.liquidity import build_ladder
from dragonflybot.fix.codec import Message
from dragonflybot.fix.marketdata import (
    BookKind,
    MDRequest,
    SubscriptionType,
    apply_incremental,
    bbo_entries,
    ladder_entries,
)
from dragonflybot.fix.server import FixServer

from .rig import Market, make_server
from .test_marketdata import changes_of
from .test_server_sockets import _all, entries_of, view

pytest.importorskip("quickfix")

from .qf import QuickFixClient


@asynccontextmanager
async def running(market: Market, workdir: Path) -> AsyncIterator[tuple[FixServer, QuickFixClient]]:
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = QuickFixClient(port, workdir)
        await client.start()
        try:
            assert await client.next("logon") == "logon"
            yield server, client
        finally:
            await client.stop()
            server.shutdown()


def fix_message(item: Message | str) -> Message:
    assert isinstance(item, Message)
    return item


async def test_logon_snapshot_incrementals_heartbeat_reject_and_logout(tmp_path: Path) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"), view("bitstamp", "10", "11.5", "2"))
    async with running(market, tmp_path) as (server, client):
        client.md_request("md1", "ETH-BTC", update="1")
        snap = fix_message(await client.next("W"))
        held = entries_of(snap.fields)
        book = market.publish(view("binance", "10.1", "11"))
        inc = fix_message(await client.next("X"))
        body = [f for f in inc.fields if f[0] not in (8, 9, 10, 34, 35, 49, 52, 56)]
        ordered = [f for f in body if f[0] == 262] + [f for f in body if f[0] == 268]
        ordered += [f for f in body if f[0] not in (262, 268)]
        held = apply_incremental(BookKind.BBO, held, changes_of(ordered, BookKind.BBO))
        assert held == bbo_entries(book, _all(10))
        # The market goes quiet: the acceptor's heartbeats keep the session up.
        assert fix_message(await client.next("0")).msg_type == "0"
        # Unknown instrument -> 35=Y with MDReqRejReason 0.
        client.md_request("md2", "DOGE-EUR")
        reject = fix_message(await client.next("Y"))
        assert reject.get(262) == "md2" and reject.get(281) == "0"
        # A malformed request (MarketDepth not a number) -> 35=3 naming the tag.
        client.md_request("md3", "ETH-BTC", depth="deep")
        session_reject = fix_message(await client.next("3"))
        assert session_reject.get(371) == "264" and session_reject.get(373) == "6"
        assert session_reject.get(372) == "V"
        # Unsubscribe: no more X for md1.
        client.md_request("md1", "ETH-BTC", sub="2")
        await trio.sleep(0.2)
        assert client.app.logged_on
    assert await client.next("logout") == "logout"
    assert server.stats.sessions == 1 and server.stats.garbled == 0
    assert server.stats.rejects == 1 and server.stats.md_rejects == 1


async def test_ladder_subscription_and_cost_to_trade(tmp_path: Path) -> None:
    market = Market()
    a = view("binance", "10", "11")
    b = view("bitstamp", "10", "11.5", "2")
    market.publish(a, b)
    async with running(market, tmp_path) as (_, client):
        client.md_request("lad", "ethbtc", sub="0", book="1")
        snap = fix_message(await client.next("W"))
        ladder = build_ladder([a, b], 10)
        everything = MDRequest("x", SubscriptionType.SNAPSHOT, book=BookKind.LADDER, depth=10)
        assert entries_of(snap.fields, market_tag=5002) == ladder_entries(ladder, everything)
        client.send("U1", [(262, "c1"), (55, "ETH-BTC"), (54, "1"), (38, "2")])
        report = fix_message(await client.next("U2"))
        assert report.get(5101) == "0" and report.get(6) == "11.25"
        assert report.get(5104) == "11.5" and report.get(5108) == "2"
        client.send("U1", [(262, "c2"), (55, "ETH-BTC"), (54, "2"), (38, "50")])
        short = fix_message(await client.next("U2"))
        assert short.get(5101) == "1" and short.get(5102) == "3"


async def test_sequence_gaps_both_ways_are_resolved(tmp_path: Path) -> None:
    market = Market()
    market.publish(view("binance", "10", "11"))
    async with running(market, tmp_path) as (_, client):
        client.md_request("md1", "ETH-BTC", update="1")
        await client.next("W")
        # Client -> acceptor gap: the client skips 5 numbers. The acceptor does not act
        # on the request past the gap but asks for a resend from the number it expected;
        # QuickFIX gap-fills the range (it does not replay a stale request), the acceptor
        # accepts the fill, and the session goes on in sequence.
        session = client.session
        expected = session.getExpectedSenderNum()
        session.setNextSenderMsgSeqNum(expected + 5)
        client.md_request("md2", "ETH-BTC", sub="0")
        resend = fix_message(await client.next("2"))
        assert resend.get(7) == str(expected) and resend.get(16) == "0"
        # The ResendRequest reaches the test before QuickFIX answers it: a request sent
        # before the gap fill would itself be past the gap (and gap-filled, unanswered).
        await client.sent("4")
        client.md_request("md3", "ETH-BTC", sub="0")
        assert fix_message(await client.next("W")).get(262) == "md3"
        # Acceptor -> client gap: the client "loses" our last messages. It asks for a
        # resend; the acceptor gap-fills and sends its incremental subscribers a fresh W.
        session.setNextTargetMsgSeqNum(session.getExpectedTargetNum() - 2)
        market.publish(view("binance", "10.2", "11"))
        fill = fix_message(await client.next("4"))
        assert fill.get(123) == "Y" and fill.get(43) == "Y"
        fresh = fix_message(await client.next("W"))
        assert fresh.get(262) == "md1"
        assert entries_of(fresh.fields)[0].price == parse("10.2")
        assert client.app.logged_on


async def test_wrong_password_is_refused(tmp_path: Path) -> None:
    market = Market()
    server = make_server(market)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        client = QuickFixClient(port, tmp_path, password="nope")
        await client.start()
        logout = fix_message(await client.next("5"))
        assert logout.get(58) == "bad password (554)"
        await client.stop()
        server.shutdown()
    assert server.stats.sessions == 0
