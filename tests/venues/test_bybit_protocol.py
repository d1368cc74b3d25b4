"""Bybit v5 spot ``orderbook.{depth}.{symbol}``: the documented messages (shared/venues.md 7).

The snapshot and delta are Bybit's own doc examples (BTCUSDT), the ack and pong the
documented spot replies. The recordings in public archives are of the retired pre-v5
API, so these are the protocol's ground truth.
"""

from __future__ import annotations

import json

import pytest

from dragonflybot.config import VenueConfig
from dragonflybot.core.fixed import parse
from dragonflybot.errors import ConfigError
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Ignored,
    ReconnectNow,
    Resubscribe,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
)
from dragonflybot.venues.bybit import BybitProtocol, symbol_of
from dragonflybot.venues.registry import create_protocol, lookup

DOC_SNAPSHOT = (
    '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1672304484978,'
    '"data":{"s":"BTCUSDT","b":[["16493.50","0.006"],["16493.00","0.100"]],'
    '"a":[["16611.00","0.029"],["16612.00","0.213"]],"u":18521288,"seq":7961638724},'
    '"cts":1672304484976}'
)
DOC_ACK = (
    '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924-aa4d-45b0-a858-7b8be29ab52b",'
    '"req_id":"10001","op":"subscribe"}'
)
DOC_PONG = (
    '{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}'
)


def delta(u: int, bids: list[list[str]], asks: list[list[str]], seq: int = 7961638725) -> str:
    return json.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": "delta",
            "ts": 1687940967466,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": seq},
            "cts": 1687940967464,
        }
    )


def synced(depth: int | None = None) -> BybitProtocol:
    p = BybitProtocol("BTC-USDT", depth=depth)
    p.connection_made()
    assert p.receive(DOC_ACK) == [Subscribed((p.topic,))]
    snapshot = DOC_SNAPSHOT.replace("orderbook.50.", f"orderbook.{p.depth}.")
    assert p.receive(snapshot) == [BookChanged(1672304484976)]
    return p


def test_subscribes_to_the_depth_topic_and_pings() -> None:
    p = BybitProtocol("ETH-BTC")
    events = p.connection_made()
    assert [json.loads(e.text) for e in events if isinstance(e, SendText)] == [
        {"op": "subscribe", "args": ["orderbook.50.ETHBTC"], "req_id": "subscribe"}
    ]
    assert json.loads(p.heartbeat())["op"] == "ping"
    assert not p.uses_rest


@pytest.mark.parametrize("depth", [1, 50, 200, 1000])
def test_each_published_depth_is_accepted(depth: int) -> None:
    p = create_protocol(VenueConfig(name="bybit", depth=depth), "ETH-BTC")
    assert p.streams == (f"orderbook.{depth}.ETHBTC",)


def test_other_depths_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="1, 50, 200, 1000"):
        create_protocol(VenueConfig(name="bybit", depth=25), "ETH-BTC")


def test_the_documented_snapshot_and_delta() -> None:
    p = synced()
    assert p.update_id == 18521288 and p.seq == 7961638724 and p.cts == 1672304484976
    events = p.receive(
        delta(18521289, [["16493.50", "0"], ["16494.00", "1.5"]], [["16611.00", "0.5"]])
    )
    assert events == [BookChanged(1687940967464)]
    bids, asks = p.top(5)
    assert [(lv.price, lv.amount) for lv in bids] == [
        (parse("16494.00"), parse("1.5")),
        (parse("16493.00"), parse("0.100")),
    ]
    assert asks[0].amount == parse("0.5")
    assert p.update_id == 18521289 and p.seq == 7961638725 and p.cts == 1687940967464
    assert p.venue_seq == 18521289  # the book's ``u``, consecutive per topic


def test_a_stale_delta_is_dropped() -> None:
    p = synced()
    before = p.top(5)
    assert isinstance(p.receive(delta(18521288, [["1", "1"]], []))[0], Dropped)
    assert p.top(5) == before


def test_a_u_jump_discards_the_book_and_resubscribes_the_topic() -> None:
    p = synced()
    events = p.receive(delta(18521291, [["16400", "1"]], []))
    assert isinstance(events[0], BookReset) and "18521288" in events[0].reason
    assert isinstance(events[1], Resubscribe)
    assert [json.loads(f)["op"] for f in events[1].frames] == ["unsubscribe", "subscribe"]
    assert all(json.loads(f)["args"] == [p.topic] for f in events[1].frames)
    assert not p.has_book and p.counters.gaps == 1
    # The resubscription's snapshot restores it.
    assert p.receive(DOC_SNAPSHOT) == [BookChanged(1672304484976)]


def test_a_later_snapshot_replaces_the_book_and_u_1_is_a_restart() -> None:
    p = synced()
    restart = DOC_SNAPSHOT.replace('"u":18521288', '"u":1').replace(
        '[["16493.50","0.006"],["16493.00","0.100"]]', '[["16490.00","9"]]'
    )
    assert p.receive(restart) == [BookChanged(1672304484976)]
    assert p.top_bids(5)[0].price == parse("16490.00") and len(p.top_bids(5)) == 1
    assert p.update_id == 1 and p.restarts == 1
    assert p.receive(delta(2, [["16491", "1"]], [])) == [BookChanged(1687940967464)]


def test_the_book_is_truncated_to_the_depth() -> None:
    p = synced(depth=1)
    assert len(p.top_bids(5)) == 1 and len(p.top_asks(5)) == 1


@pytest.mark.parametrize(
    "frame",
    [
        "[1,2",
        delta(18521289, [["abc", "1"]], []),
        delta(18521289, [["-1", "1"]], []),
        delta(0, [], []),
        DOC_SNAPSHOT.replace('"s":"BTCUSDT"', '"s":"ETHBTC"'),
        DOC_SNAPSHOT.replace('"type":"snapshot"', '"type":"partial"'),
        DOC_SNAPSHOT.replace('"u":18521288', '"u":"18521288"'),
    ],
)
def test_a_malformed_message_is_skipped_without_touching_the_book(frame: str) -> None:
    p = synced()
    before = p.top(50)
    events = p.receive(frame)
    assert len(events) == 1 and isinstance(events[0], Skipped)
    assert p.top(50) == before and p.update_id == 18521288


def test_replies() -> None:
    p = BybitProtocol("BTC-USDT")
    p.connection_made()
    refused = '{"success":false,"ret_msg":"Invalid topic","op":"subscribe","conn_id":"x"}'
    assert p.receive(refused) == [SubscriptionRejected("orderbook.50.BTCUSDT", "Invalid topic")]
    q = synced()
    assert q.receive(DOC_PONG) == [Ignored("pong")]
    assert q.receive(DOC_ACK) == [Ignored("subscribe acknowledged")]
    assert q.receive(refused) == [ReconnectNow("resubscription refused: Invalid topic")]
    other = DOC_SNAPSHOT.replace("orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT")
    assert isinstance(q.receive(other)[0], Ignored)


def test_deltas_before_the_snapshot_are_dropped() -> None:
    p = BybitProtocol("BTC-USDT")
    p.connection_made()
    p.receive(DOC_ACK)
    assert isinstance(p.receive(delta(5, [["1", "1"]], []))[0], Dropped)
    assert not p.has_book


def test_spec_maps_canonical_instruments() -> None:
    assert symbol_of("ETH-BTC") == "ETHBTC"
    assert lookup("bybit").symbol("ETH-BTC") == "ETHBTC"
