"""Sans-I/O Bitstamp protocol: subscribe, acks/errors, control events, microtimestamp sync."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.errors import ConfigError
from dragonflybot.venues.base import (
    BookChanged,
    Dropped,
    Event,
    FetchSnapshot,
    Ignored,
    ReconnectNow,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
    VenueNotice,
)
from dragonflybot.venues.bitstamp import BitstampProtocol


def data(channel: str, micros: int | str, bids: Any = (), asks: Any = ()) -> str:
    payload = {"microtimestamp": str(micros), "bids": list(bids), "asks": list(asks)}
    return json.dumps({"event": "data", "channel": channel, "data": payload})


def diff(micros: int | str, bids: Any = (), asks: Any = ()) -> str:
    return data("diff_order_book_ethbtc", micros, bids, asks)


def rest(micros: int, bids: Any = (), asks: Any = ()) -> bytes:
    body = {"timestamp": str(micros // 10**6), "microtimestamp": str(micros)}
    return json.dumps(body | {"bids": list(bids), "asks": list(asks)}).encode()


def ack(channel: str) -> str:
    return json.dumps({"event": "bts:subscription_succeeded", "channel": channel, "data": {}})


def lv(price: str, amount: str) -> Level:
    return Level(parse(price), parse(amount))


def kinds(events: list[Event]) -> list[type]:
    return [type(e) for e in events]


def subscribed(mode: str = "depth") -> BitstampProtocol:
    protocol = BitstampProtocol("ethbtc", mode=mode)  # type: ignore[arg-type]
    protocol.connection_made()
    assert kinds(protocol.receive(ack(protocol.channel))) == [Subscribed]
    return protocol


def fetch_of(events: list[Event]) -> FetchSnapshot:
    fetches = [e for e in events if isinstance(e, FetchSnapshot)]
    assert len(fetches) == 1, events
    return fetches[0]


def test_channels_and_subscribe_messages() -> None:
    snap = BitstampProtocol("ethbtc")
    (send,) = snap.connection_made()
    assert isinstance(send, SendText)
    assert json.loads(send.text) == {
        "event": "bts:subscribe",
        "data": {"channel": "order_book_ethbtc"},
    }
    diff_mode = BitstampProtocol.from_config(
        VenueConfig(name="bitstamp", mode="depth", symbol="ETHEUR", rest_url="http://h:1/"), "x"
    )
    assert diff_mode.channel == "diff_order_book_etheur"
    assert diff_mode.ws_url == "wss://ws.bitstamp.net"
    assert json.loads(diff_mode.heartbeat()) == {"event": "bts:heartbeat"}


def test_bad_pair_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        BitstampProtocol("eth_btc")


def test_ack_for_our_channel_only() -> None:
    protocol = BitstampProtocol("ethbtc")
    protocol.connection_made()
    assert kinds(protocol.receive(ack("order_book_btcusd"))) == [Ignored]
    assert not protocol.subscribed
    assert protocol.receive(ack("order_book_ethbtc")) == [Subscribed(("order_book_ethbtc",))]
    assert protocol.synced


def test_error_before_ack_rejects_subscription() -> None:
    protocol = BitstampProtocol("ethbtc")
    protocol.connection_made()
    text = '{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad channel."}}'
    assert protocol.receive(text) == [SubscriptionRejected("order_book_ethbtc", "Bad channel.")]


def test_error_after_ack_is_a_notice() -> None:
    protocol = subscribed("top")
    text = '{"event":"bts:error","channel":"","data":{"code":null,"message":"Incorrect JSON."}}'
    assert protocol.receive(text) == [VenueNotice("Incorrect JSON.")]
    assert kinds(protocol.receive('{"event":"bts:error","data":"weird"}')) == [VenueNotice]


def test_request_reconnect_and_heartbeat_reply() -> None:
    protocol = subscribed("top")
    assert protocol.receive('{"event":"bts:request_reconnect","channel":"","data":""}') == [
        ReconnectNow("bts:request_reconnect")
    ]
    reply = '{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
    assert protocol.receive(reply) == [Ignored("heartbeat reply")]


def test_order_book_replaces_top_and_ignores_older() -> None:
    protocol = subscribed("top")
    chan = "order_book_ethbtc"
    events = protocol.receive(data(chan, 1_000_000_500, [["0.05", "1"]], [["0.06", "2"]]))
    assert events == [BookChanged(1_000_000)]
    assert protocol.top_asks(100) == (lv("0.06", "2"),)
    assert protocol.venue_seq == 1_000_000_500  # the microtimestamp: Bitstamp numbers nothing
    assert kinds(protocol.receive(data(chan, 999_000_000, [["0.01", "1"]]))) == [Dropped]
    assert protocol.venue_seq == 1_000_000_500
    assert protocol.top_bids(100) == (lv("0.05", "1"),)
    assert kinds(protocol.receive(data("order_book_btcusd", 2_000_000_000))) == [Ignored]


def test_diff_sync_by_microtimestamp() -> None:
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(100, bids=[["1", "1"]])))
    assert fetch.url == "https://www.bitstamp.net/api/v2/order_book/ethbtc/"
    assert fetch.params == () and fetch.delay == 0
    assert protocol.receive(diff(200, bids=[["2", "1"]])) == []
    assert protocol.receive(diff(300, asks=[["5", "1"]])) == []
    events = protocol.snapshot_received(
        fetch.token, rest(200, bids=[["2", "1"], ["1", "1"]], asks=[["6", "1"]])
    )
    assert events == [Dropped(2, "buffered diffs not newer than snapshot 200"), BookChanged(0)]
    assert protocol.synced and protocol.book_micros == 300 and protocol.venue_seq == 300
    assert protocol.top_asks(5) == (lv("5", "1"), lv("6", "1"))
    # Live: older or equal microtimestamps are dropped, newer applied.
    assert kinds(protocol.receive(diff(300, bids=[["9", "9"]]))) == [Dropped]
    assert protocol.receive(diff(4_000, bids=[["1", "0"]])) == [BookChanged(4)]
    assert protocol.top_bids(5) == (lv("2", "1"),)
    assert (protocol.counters.applied, protocol.counters.dropped) == (2, 3)


def test_snapshot_before_buffer_start_is_fetched_again() -> None:
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(500)))
    refetch = fetch_of(protocol.snapshot_received(fetch.token, rest(400)))
    assert refetch.delay > 0 and protocol.counters.refetches == 1
    assert not protocol.has_book
    assert kinds(protocol.snapshot_received(refetch.token, rest(500))) == [Dropped, BookChanged]
    assert protocol.has_book


def test_reconnect_forces_a_new_snapshot() -> None:
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(100)))
    protocol.snapshot_received(fetch.token, rest(100, bids=[["1", "1"]]))
    assert protocol.has_book
    protocol.connection_made()
    assert not protocol.has_book and protocol.top_bids(5) == ()
    protocol.receive(ack(protocol.channel))
    assert kinds(protocol.receive(diff(200))) == [FetchSnapshot]


@pytest.mark.parametrize(
    "text",
    [
        diff("12a"),
        diff(""),
        diff("-5"),
        diff(10**30),
        diff(600, bids=[["1", "-1"]]),
        diff(600, bids=[["1e5", "1"]]),
        diff(600, asks=[["NaN", "1"]]),
        diff(600, asks=[["1", "1"], ["2"]]),
        '{"event":"data","channel":"diff_order_book_ethbtc","data":{"bids":[],"asks":[]}}',
        '{"event":"data","channel":"diff_order_book_ethbtc","data":[]}',
        '{"event":"data","channel":"diff_order_book_ethbtc"}',
        '{"channel":"diff_order_book_ethbtc"}',
        '{"event":5}',
        "not json",
        b"\x00\x01",
    ],
)
def test_malformed_diff_is_skipped_and_book_untouched(text: str | bytes) -> None:
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(500, bids=[["1", "1"]])))
    protocol.snapshot_received(fetch.token, rest(500, bids=[["1", "2"]], asks=[["3", "1"]]))
    before = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict(), protocol.book_micros)
    assert kinds(protocol.receive(text)) == [Skipped]
    after = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict(), protocol.book_micros)
    assert after == before
    assert protocol.counters.skipped == 1


def test_malformed_rest_body_is_skipped_and_refetched() -> None:
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(500)))
    events = protocol.snapshot_received(fetch.token, b'{"microtimestamp":"x","bids":[],"asks":[]}')
    assert kinds(events) == [Skipped, FetchSnapshot]
    assert not protocol.has_book


def test_well_formed_book_of_another_channel_is_ignored_and_book_untouched() -> None:
    """It decodes on the one-pass data path; the channel name alone must turn it away."""
    protocol = subscribed()
    fetch = fetch_of(protocol.receive(diff(5, bids=[["1", "1"]])))
    protocol.snapshot_received(fetch.token, rest(10, bids=[["1", "2"]]))
    assert kinds(protocol.receive(data("diff_order_book_btcusd", 20, [["5", "1"]]))) == [Ignored]
    assert kinds(protocol.receive(data("order_book_ethbtc", 20, [["5", "1"]]))) == [Ignored]
    assert protocol.full_book.bids_dict() == {parse("1"): parse("2")}
    assert kinds(protocol.receive(diff(20, [["5", "1"]]))) == [BookChanged]
    assert protocol.top_bids(2) == (lv("5", "1"), lv("1", "2"))
