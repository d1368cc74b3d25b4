"""Sans-I/O Binance protocol: subscribe, acks, partial depth, diff sync state machine."""

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
    BookReset,
    Dropped,
    Event,
    FetchSnapshot,
    Ignored,
    ReconnectNow,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
)
from dragonflybot.venues.binance import BinanceProtocol


def frame(stream: str, data: Any) -> str:
    return json.dumps({"stream": stream, "data": data})


def update(first: int, last: int, bids: Any = (), asks: Any = (), symbol: str = "ETHBTC") -> str:
    data = {"e": "depthUpdate", "E": 1000 + last, "s": symbol, "U": first, "u": last}
    return frame("ethbtc@depth@100ms", data | {"b": list(bids), "a": list(asks)})


def snapshot(last_id: int, bids: Any = (), asks: Any = ()) -> bytes:
    body = {"lastUpdateId": last_id, "bids": list(bids), "asks": list(asks)}
    return json.dumps(body).encode()


def lv(price: str, amount: str) -> Level:
    return Level(parse(price), parse(amount))


def kinds(events: list[Event]) -> list[type]:
    return [type(e) for e in events]


def subscribed(mode: str = "depth") -> BinanceProtocol:
    protocol = BinanceProtocol("ethbtc", mode=mode)  # type: ignore[arg-type]
    protocol.connection_made()
    expected = [Subscribed, FetchSnapshot] if mode == "depth" else [Subscribed]
    assert kinds(protocol.receive('{"result":null,"id":1}')) == expected
    return protocol


def subscribed_diff() -> tuple[BinanceProtocol, FetchSnapshot]:
    """A diff-mode protocol right after its ack, and the snapshot request the ack started."""
    protocol = BinanceProtocol("ethbtc", mode="depth")
    protocol.connection_made()
    events = protocol.receive('{"result":null,"id":1}')
    assert kinds(events) == [Subscribed, FetchSnapshot]
    return protocol, fetch_of(events)


def fetch_of(events: list[Event]) -> FetchSnapshot:
    fetches = [e for e in events if isinstance(e, FetchSnapshot)]
    assert len(fetches) == 1, events
    return fetches[0]


# --- naming and subscribe ------------------------------------------------------------------


def test_instrument_maps_to_symbol_and_streams() -> None:
    snap = BinanceProtocol("ethbtc")
    assert (snap.symbol, snap.stream) == ("ETHBTC", "ethbtc@depth20@100ms")
    diff = BinanceProtocol("ethbtc", mode="depth")
    assert diff.stream == "ethbtc@depth@100ms"
    assert diff.ws_url == "wss://stream.binance.com:9443/stream"
    override = BinanceProtocol.from_config(
        VenueConfig(name="binance", symbol="BTCUSDT", depth=10, ws_url="ws://h/stream"), "ethbtc"
    )
    assert (override.symbol, override.stream) == ("BTCUSDT", "btcusdt@depth10@100ms")
    assert override.ws_url == "ws://h/stream"


@pytest.mark.parametrize(("depth", "levels"), [(1, 5), (5, 5), (6, 10), (20, 20), (None, 20)])
def test_partial_stream_size_serves_depth(depth: int | None, levels: int) -> None:
    assert BinanceProtocol("ethbtc", levels=depth).stream == f"ethbtc@depth{levels}@100ms"


def test_snapshot_mode_rejects_depth_beyond_20() -> None:
    with pytest.raises(ConfigError, match="at most 20"):
        BinanceProtocol("ethbtc", levels=21)


@pytest.mark.parametrize("symbol", ["eth/btc", "", "ETH BTC", "éth"])
def test_bad_symbol_is_a_config_error(symbol: str) -> None:
    with pytest.raises(ConfigError):
        BinanceProtocol("ethbtc", symbol=symbol or " ")


def test_subscribe_message_and_new_id_per_connection() -> None:
    protocol = BinanceProtocol("ethbtc", mode="depth")
    for expected_id in (1, 2):
        (send,) = protocol.connection_made()
        assert isinstance(send, SendText)
        assert json.loads(send.text) == {
            "method": "SUBSCRIBE",
            "params": ["ethbtc@depth@100ms"],
            "id": expected_id,
        }


def test_ack_with_matching_id_subscribes() -> None:
    protocol = BinanceProtocol("ethbtc")
    protocol.connection_made()
    assert kinds(protocol.receive('{"result":null,"id":7}')) == [Ignored]
    assert not protocol.subscribed
    (event,) = protocol.receive('{"result":null,"id":1}')
    assert event == Subscribed(("ethbtc@depth20@100ms",))
    assert protocol.subscribed and protocol.synced
    # A second ack is not awaited any more.
    assert kinds(protocol.receive('{"result":null,"id":1}')) == [Ignored]


@pytest.mark.parametrize(
    "reply",
    [
        '{"code":2,"msg":"Invalid request: unknown stream","id":1}',
        '{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":1}',
        '{"code":3,"msg":"Invalid JSON","id":null}',
    ],
)
def test_error_reply_rejects_naming_stream(reply: str) -> None:
    protocol = BinanceProtocol("ethbtc")
    protocol.connection_made()
    (event,) = protocol.receive(reply)
    assert isinstance(event, SubscriptionRejected)
    assert event.stream == "ethbtc@depth20@100ms"
    assert "code" in event.message and str(json.loads(reply).get("code", 2)) in event.message
    assert not protocol.subscribed


def test_non_null_result_is_a_rejection() -> None:
    protocol = BinanceProtocol("ethbtc")
    protocol.connection_made()
    (event,) = protocol.receive('{"result":["x"],"id":1}')
    assert isinstance(event, SubscriptionRejected)
    assert '["x"]' in event.message


@pytest.mark.parametrize(
    "text",
    [
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}',
        '{"e":"serverShutdown","E":1}',
    ],
)
def test_server_shutdown_requests_reconnect(text: str) -> None:
    protocol = subscribed("top")
    assert protocol.receive(text) == [ReconnectNow("serverShutdown")]


def test_other_streams_are_ignored() -> None:
    protocol = subscribed("top")
    events = protocol.receive(frame("btcusdt@depth20@100ms", {"lastUpdateId": 1}))
    assert kinds(events) == [Ignored]
    assert not protocol.has_book


# --- snapshot mode -------------------------------------------------------------------------


def test_partial_depth_replaces_top_book() -> None:
    protocol = subscribed("top")
    stream = "ethbtc@depth20@100ms"
    assert protocol.venue_seq is None
    data = {"lastUpdateId": 5, "bids": [["0.05", "1"], ["0.04", "2"]], "asks": [["0.06", "3"]]}
    assert protocol.receive(frame(stream, data)) == [BookChanged(None)]
    assert protocol.has_book and protocol.venue_seq == 5
    assert protocol.top_bids(5) == (lv("0.05", "1"), lv("0.04", "2"))
    assert protocol.top_bids(1) == (lv("0.05", "1"),)
    data = {"lastUpdateId": 6, "bids": [["0.051", "1"]], "asks": []}
    protocol.receive(frame(stream, data))
    assert protocol.top_bids(5) == (lv("0.051", "1"),)
    assert protocol.top_asks(5) == ()
    assert protocol.counters.applied == 2
    assert protocol.venue_seq == 6


@pytest.mark.parametrize(
    "data",
    [
        {"lastUpdateId": 5, "bids": [["0.04", "1"], ["0.05", "1"]], "asks": []},  # unordered
        {"lastUpdateId": 5, "bids": [["0.05", "-1"]], "asks": []},  # negative
        {"lastUpdateId": 5, "bids": [["abc", "1"]], "asks": []},  # non-numeric
        {"lastUpdateId": 5, "bids": [[0.05, 1]], "asks": []},  # numbers, not strings
        {"lastUpdateId": "5", "bids": [], "asks": []},  # wrong type
        {"bids": [], "asks": []},  # missing field
    ],
)
def test_malformed_partial_depth_leaves_book(data: Any) -> None:
    protocol = subscribed("top")
    good = {"lastUpdateId": 4, "bids": [["0.05", "1"]], "asks": [["0.06", "1"]]}
    protocol.receive(frame("ethbtc@depth20@100ms", good))
    before = (protocol.top_bids(20), protocol.top_asks(20))
    assert kinds(protocol.receive(frame("ethbtc@depth20@100ms", data))) == [Skipped]
    assert (protocol.top_bids(20), protocol.top_asks(20)) == before
    assert protocol.counters.skipped == 1


# --- diff mode -----------------------------------------------------------------------------


def test_diff_sync_drops_old_then_applies_in_sequence() -> None:
    protocol, fetch = subscribed_diff()
    assert not protocol.synced
    assert protocol.receive(update(95, 99, bids=[["1.0", "1"]])) == []
    assert fetch.url == "https://api.binance.com/api/v3/depth"
    assert dict(fetch.params) == {"symbol": "ETHBTC", "limit": "1000"}
    assert fetch.delay == 0
    # Buffered while the snapshot is in flight: no second request.
    assert protocol.receive(update(100, 102, bids=[["2.0", "2"]])) == []
    events = protocol.snapshot_received(
        fetch.token, snapshot(100, bids=[["2.0", "5"], ["1.5", "1"]], asks=[["3.0", "1"]])
    )
    assert events == [
        Dropped(1, "buffered events not newer than snapshot 100"),
        BookChanged(1102),
    ]
    assert protocol.synced and protocol.book_id == 102 and protocol.venue_seq == 102
    assert protocol.top_bids(5) == (lv("2.0", "2"), lv("1.5", "1"))
    assert protocol.receive(update(103, 104, asks=[["3.0", "0"]])) == [BookChanged(1104)]
    assert protocol.top_asks(5) == ()
    assert protocol.counters.applied == 2 and protocol.counters.dropped == 1


def test_quiet_symbol_syncs_from_the_snapshot_requested_at_ack() -> None:
    protocol, fetch = subscribed_diff()
    assert fetch.delay == 0
    # No event buffered yet: the snapshot alone is the book...
    events = protocol.snapshot_received(fetch.token, snapshot(50, bids=[["1", "1"]]))
    assert events == [BookChanged(None)]
    assert protocol.synced and protocol.top_bids(5) == (lv("1", "1"),)
    # ...and the first live event is still held to U <= L + 1.
    assert kinds(protocol.receive(update(49, 50))) == [Dropped]
    assert protocol.receive(update(51, 52)) == [BookChanged(1052)]


def test_snapshot_at_ack_older_than_stream_is_caught_by_first_event() -> None:
    protocol, fetch = subscribed_diff()
    protocol.snapshot_received(fetch.token, snapshot(50))
    assert kinds(protocol.receive(update(60, 61))) == [BookReset, FetchSnapshot]
    assert not protocol.has_book


def test_events_before_the_ack_start_the_sync() -> None:
    protocol = BinanceProtocol("ethbtc", mode="depth")
    protocol.connection_made()
    fetch = fetch_of(protocol.receive(update(10, 11)))
    # The ack does not ask a second time while that request is in flight.
    assert kinds(protocol.receive('{"result":null,"id":1}')) == [Subscribed]
    assert protocol.snapshot_received(fetch.token, snapshot(10)) == [BookChanged(1011)]
    assert protocol.synced


def test_first_event_may_straddle_snapshot_id() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(98, 103, bids=[["1", "1"]])) == []
    events = protocol.snapshot_received(fetch.token, snapshot(100))
    assert events == [BookChanged(1103)]
    assert protocol.book_id == 103


def test_snapshot_older_than_buffer_is_fetched_again() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(200, 201)) == []
    refetch = fetch_of(protocol.snapshot_received(fetch.token, snapshot(150)))
    assert refetch.token != fetch.token and refetch.delay > 0
    assert not protocol.has_book and protocol.counters.refetches == 1
    # A late answer to the superseded request is ignored.
    assert kinds(protocol.snapshot_received(fetch.token, snapshot(300))) == [Ignored]
    assert protocol.snapshot_received(refetch.token, snapshot(200)) == [BookChanged(1201)]
    assert protocol.synced


def test_gap_discards_book_and_resyncs() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    protocol.snapshot_received(fetch.token, snapshot(10, bids=[["1", "1"]]))
    assert protocol.book_id == 11
    events = protocol.receive(update(13, 14))  # 12 is missing
    assert kinds(events) == [BookReset, FetchSnapshot]
    reset = events[0]
    assert isinstance(reset, BookReset) and reset.gap
    assert "11" in reset.reason and "13" in reset.reason
    assert not protocol.has_book and not protocol.synced
    assert protocol.top_bids(5) == ()
    assert protocol.counters.gaps == 1
    # The event that revealed the gap is the first buffered event of the new sync.
    refetch = fetch_of(events)
    assert protocol.receive(update(15, 15)) == []
    events = protocol.snapshot_received(refetch.token, snapshot(14, bids=[["9", "1"]]))
    assert kinds(events) == [Dropped, BookChanged]
    assert events[-1] == BookChanged(1015)
    assert protocol.top_bids(5) == (lv("9", "1"),)


def test_first_event_after_snapshot_must_reach_it() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(100, 101)) == []
    # Snapshot far ahead of every buffered event: all dropped; the next live
    # event must still satisfy U <= L + 1.
    events = protocol.snapshot_received(fetch.token, snapshot(120))
    assert kinds(events) == [Dropped, BookChanged]
    assert kinds(protocol.receive(update(125, 126))) == [BookReset, FetchSnapshot]


def test_gap_inside_buffer_keeps_later_events() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    protocol.receive(update(12, 12))
    protocol.receive(update(14, 14))  # gap after 12
    protocol.receive(update(15, 15))
    events = protocol.snapshot_received(fetch.token, snapshot(10))
    assert kinds(events) == [BookReset, FetchSnapshot]
    refetch = fetch_of(events)
    # Buffer now starts at the gap event 14: a snapshot at 14 drops it and applies 15.
    events = protocol.snapshot_received(refetch.token, snapshot(14))
    assert events == [Dropped(1, "buffered events not newer than snapshot 14"), BookChanged(1015)]
    assert protocol.book_id == 15


def test_duplicate_event_after_sync_is_dropped_not_a_gap() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    protocol.snapshot_received(fetch.token, snapshot(10))
    assert kinds(protocol.receive(update(10, 11))) == [Dropped]
    assert protocol.counters.gaps == 0 and protocol.synced


def test_overlapping_event_after_first_is_a_gap() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    protocol.snapshot_received(fetch.token, snapshot(10))
    assert kinds(protocol.receive(update(11, 13))) == [BookReset, FetchSnapshot]


def test_reconnect_discards_book_and_pending_snapshot() -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    protocol.snapshot_received(fetch.token, snapshot(10, bids=[["1", "1"]]))
    fetch2 = fetch_of(protocol.receive(update(20, 21)))  # gap -> new request
    protocol.connection_made()
    assert not protocol.has_book and not protocol.subscribed
    assert kinds(protocol.snapshot_received(fetch2.token, snapshot(21))) == [Ignored]
    assert protocol.top_bids(5) == ()


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"lastUpdateId": 5}', b'{"lastUpdateId":5,"bids":[["-1","1"]],"asks":[]}'],
)
def test_malformed_snapshot_is_skipped_and_refetched(body: bytes) -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11)) == []
    events = protocol.snapshot_received(fetch.token, body)
    assert kinds(events) == [Skipped, FetchSnapshot]
    assert fetch_of(events).delay > 0
    assert not protocol.has_book


@pytest.mark.parametrize(
    "text",
    [
        update(5, 4),  # U > u
        update(1, 2, symbol="BTCUSDT"),  # wrong symbol on our stream
        update(1, 2, bids=[["1", "x"]]),
        update(1, 2, bids=[["1"]]),
        update(1, 2, asks=[["1", "1", "1"]]),
        frame("ethbtc@depth@100ms", {"e": "depthUpdate"}),
        frame("ethbtc@depth@100ms", [1, 2]),
        '{"stream":"ethbtc@depth@100ms"}',
        "[]",
        "{]",
        "null",
        "{}",
        b"\xff\xfe",
    ],
)
def test_malformed_diff_is_skipped_and_book_untouched(text: str | bytes) -> None:
    protocol, fetch = subscribed_diff()
    assert protocol.receive(update(10, 11, bids=[["1", "1"]])) == []
    protocol.snapshot_received(fetch.token, snapshot(10, bids=[["1", "2"]], asks=[["2", "2"]]))
    before = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict(), protocol.book_id)
    assert kinds(protocol.receive(text)) == [Skipped]
    after = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict(), protocol.book_id)
    assert after == before
    assert protocol.counters.skipped == 1
    # And the sequence carries on from where it was.
    assert kinds(protocol.receive(update(12, 12))) == [BookChanged]


def test_buffer_overflow_restarts_the_sync() -> None:
    protocol, fetch = subscribed_diff()
    limit = protocol._diff.MAX_BUFFER
    assert protocol.receive(update(1, 1)) == []
    for i in range(2, limit + 1):
        assert protocol.receive(update(i, i)) == []
    events = protocol.receive(update(limit + 1, limit + 1))
    assert kinds(events) == [Dropped, FetchSnapshot]
    assert kinds(protocol.snapshot_received(fetch.token, snapshot(1))) == [Ignored]
    # The new buffer starts after the overflow: an older snapshot is not enough.
    refetch = fetch_of(protocol.snapshot_received(fetch_of(events).token, snapshot(limit)))
    events = protocol.snapshot_received(refetch.token, snapshot(limit + 1))
    assert kinds(events) == [Dropped, BookChanged]
    assert protocol.book_id == limit + 1


def test_no_snapshot_requested_in_snapshot_mode() -> None:
    protocol = subscribed("top")
    assert kinds(protocol.snapshot_received(1, snapshot(1))) == [Ignored]
    assert protocol.heartbeat() is None


def test_well_formed_update_of_another_stream_is_ignored_and_book_untouched() -> None:
    """It decodes on the one-pass data path; the stream name alone must turn it away."""
    protocol, fetch = subscribed_diff()
    protocol.snapshot_received(fetch.token, snapshot(10, bids=[["1", "2"]]))
    other = update(11, 11, bids=[["5", "1"]], symbol="BTCUSDT")
    other = other.replace("ethbtc@depth@100ms", "btcusdt@depth@100ms")
    assert kinds(protocol.receive(other)) == [Ignored]
    assert protocol.full_book.bids_dict() == {parse("1"): parse("2")}
    assert protocol.book_id == 10
    assert kinds(protocol.receive(update(11, 11, bids=[["5", "1"]]))) == [BookChanged]
    assert protocol.top_bids(1) == (lv("5", "1"),)
