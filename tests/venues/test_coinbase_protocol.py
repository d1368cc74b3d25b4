"""Coinbase Advanced Trade ``level2``: the documented messages (shared/venues.md 5.1).

The example ``l2_data`` update and the ``subscriptions`` ack are the documented ones
(BTC-USD); the snapshot is the same shape with ``type: snapshot``. Public archives only
hold the retired Exchange feed, so these are the protocol's ground truth.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
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
    VenueNotice,
)
from dragonflybot.venues.coinbase import CoinbaseProtocol, symbol_of
from dragonflybot.venues.registry import create_protocol, lookup

DOC_UPDATE = (
    '{"channel":"l2_data","client_id":"","timestamp":"2026-04-07T14:30:01.456789Z",'
    '"sequence_num":1,"events":[{"type":"update","product_id":"BTC-USD","updates":['
    '{"side":"bid","event_time":"2026-04-07T14:30:01.456789Z","price_level":"68900.00",'
    '"new_quantity":"2.00000000"},'
    '{"side":"offer","event_time":"2026-04-07T14:30:01.456789Z","price_level":"68901.00",'
    '"new_quantity":"0.00000000"}]}]}'
)
DOC_ACK = (
    '{"channel":"subscriptions","client_id":"","timestamp":"2026-04-07T14:30:01.000000Z",'
    '"sequence_num":0,"events":[{"subscriptions":{"level2":["BTC-USD"]}}]}'
)
EVENT_MS = 1775572201456  # 2026-04-07T14:30:01.456Z


def l2(seq: int, kind: str, levels: list[tuple[str, str, str]], product: str = "BTC-USD") -> str:
    updates = [
        {
            "side": side,
            "event_time": "2026-04-07T14:30:01.456789Z",
            "price_level": price,
            "new_quantity": qty,
        }
        for side, price, qty in levels
    ]
    return json.dumps(
        {
            "channel": "l2_data",
            "client_id": "",
            "timestamp": "2026-04-07T14:30:01.456789Z",
            "sequence_num": seq,
            "events": [{"type": kind, "product_id": product, "updates": updates}],
        }
    )


SNAPSHOT_LEVELS = [
    ("bid", "68899.00", "1.5"),
    ("bid", "68900.00", "0.5"),
    ("offer", "68901.00", "3"),
    ("offer", "68902.50", "1"),
]


def synced(**kwargs: Any) -> CoinbaseProtocol:
    p = CoinbaseProtocol("BTC-USD", **kwargs)
    p.connection_made()
    assert p.receive(DOC_ACK) == [Subscribed(("level2:BTC-USD",))]
    events = p.receive(l2(1, "snapshot", SNAPSHOT_LEVELS))
    assert events == [BookChanged(EVENT_MS)]
    return p


def test_subscribes_level2_and_heartbeats_one_channel_per_message() -> None:
    p = CoinbaseProtocol("ETH-BTC")
    events = p.connection_made()
    frames = [json.loads(e.text) for e in events if isinstance(e, SendText)]
    assert frames == [
        {"type": "subscribe", "product_ids": ["ETH-BTC"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["ETH-BTC"], "channel": "heartbeats"},
    ]
    assert not p.uses_rest and p.streams == ("level2:ETH-BTC",)


def test_a_configured_jwt_is_sent_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    secret = "eyJhbGciOiJFUzI1NiJ9.secret-token"
    config = VenueConfig(name="coinbase", jwt=secret)
    p = create_protocol(config, "ETH-BTC")
    texts = [e.text for e in p.connection_made() if isinstance(e, SendText)]
    assert all(json.loads(t)["jwt"] == secret for t in texts)
    assert secret not in repr(p)
    logging.getLogger("test").warning("protocol %r", p)
    assert secret not in caplog.text


def test_the_documented_update_applies_absolute_quantities() -> None:
    p = synced()
    # The documented update is sequence_num 1; after the ack (0) and a snapshot at 1,
    # renumber it 2 so it follows.
    update = DOC_UPDATE.replace('"sequence_num":1', '"sequence_num":2')
    assert p.receive(update) == [BookChanged(EVENT_MS)]
    bids, asks = p.top(5)
    assert [(lv.price, lv.amount) for lv in bids] == [
        (parse("68900.00"), parse("2")),
        (parse("68899.00"), parse("1.5")),
    ]
    # "0.00000000" removed the offer at 68901.00.
    assert [lv.price for lv in asks] == [parse("68902.50")]
    assert p.event_time_ms == EVENT_MS and p.sequence_num == 2
    assert p.venue_seq == 2  # the message that last changed the book


def test_a_sequence_gap_discards_the_book_and_resubscribes_the_product() -> None:
    p = synced(jwt="tok")
    events = p.receive(l2(5, "update", [("bid", "68800", "1")]))
    assert isinstance(events[0], BookReset) and events[0].gap
    assert "sequence_num gap: 1 then 5" in events[0].reason
    resubscribe = events[1]
    assert isinstance(resubscribe, Resubscribe)
    assert [json.loads(f) for f in resubscribe.frames] == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2", "jwt": "tok"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2", "jwt": "tok"},
    ]
    assert isinstance(events[2], Dropped)  # the update after the gap is not applied
    assert not p.has_book and p.counters.gaps == 1 and p.counters.resubscribes == 1
    # The fresh snapshot brings the book back, numbered on from the gap.
    assert p.receive(l2(6, "snapshot", SNAPSHOT_LEVELS)) == [BookChanged(EVENT_MS)]
    assert p.has_book


def test_heartbeats_are_numbered_too() -> None:
    p = synced()
    beat = (
        '{"channel":"heartbeats","client_id":"","timestamp":"2026-04-07T14:30:02.0Z",'
        '"sequence_num":2,"events":[{"current_time":"2026-04-07 14:30:02","heartbeat_counter":7}]}'
    )
    assert p.receive(beat) == [Ignored("heartbeats message")]
    assert p.receive(l2(4, "update", [("bid", "1", "1")]))[0] == BookReset(
        "sequence_num gap: 2 then 4", gap=True
    )


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        l2(2, "update", [("buy", "68900", "1")]),  # legacy side name
        l2(2, "update", [("bid", "-68900", "1")]),
        l2(2, "update", [("bid", "68900", "abc")]),
        l2(2, "bogus", [("bid", "68900", "1")]),
        '{"channel":"l2_data","sequence_num":"2","events":[]}',
        '{"channel":"l2_data","sequence_num":-2,"events":[]}',
        '{"channel":"l2_data","events":[]}',
    ],
)
def test_a_malformed_message_is_skipped_and_its_number_does_not_count(frame: str) -> None:
    p = synced()
    before = p.top(10)
    events = p.receive(frame)
    assert len(events) == 1 and isinstance(events[0], Skipped)
    assert p.top(10) == before and p.sequence_num == 1
    # The next good message numbered 2 follows; had the bad one been an update, its
    # loss shows as a gap at the next number instead.
    assert p.receive(l2(2, "update", [("bid", "68898", "1")])) == [BookChanged(EVENT_MS)]


def test_a_lost_malformed_update_shows_as_a_gap_at_the_next_message() -> None:
    p = synced()
    assert isinstance(p.receive(l2(2, "update", [("bid", "x", "1")]))[0], Skipped)
    assert isinstance(p.receive(l2(3, "update", [("bid", "68898", "1")]))[0], BookReset)


def test_updates_before_the_snapshot_are_dropped_and_other_products_ignored() -> None:
    p = CoinbaseProtocol("BTC-USD")
    p.connection_made()
    p.receive(DOC_ACK)
    assert isinstance(p.receive(DOC_UPDATE)[0], Dropped)
    assert p.receive(l2(2, "update", [("bid", "1", "1")], product="ETH-USD")) == [
        Ignored("l2_data for another product")
    ]
    assert not p.has_book


def test_a_gap_before_the_ack_is_only_noted() -> None:
    p = CoinbaseProtocol("BTC-USD")
    p.connection_made()
    assert p.receive(DOC_ACK.replace('"sequence_num":0', '"sequence_num":3')) == [
        Subscribed(("level2:BTC-USD",))
    ]
    p2 = CoinbaseProtocol("BTC-USD")
    p2.connection_made()
    beat = '{"channel":"heartbeats","sequence_num":0,"events":[]}'
    p2.receive(beat)
    assert p2.receive(beat.replace(":0,", ":4,"))[0] == VenueNotice("sequence_num gap: 0 then 4")


def test_errors_reject_the_subscription_then_ask_for_a_reconnect() -> None:
    p = CoinbaseProtocol("BTC-USD")
    p.connection_made()
    error = '{"type":"error","message":"Failed to subscribe"}'
    assert p.receive(error) == [SubscriptionRejected("level2:BTC-USD", "Failed to subscribe")]
    q = synced()
    assert q.receive(error) == [ReconnectNow("venue error: Failed to subscribe")]


def test_a_crossed_snapshot_is_refused_and_resubscribed() -> None:
    p = CoinbaseProtocol("BTC-USD")
    p.connection_made()
    p.receive(DOC_ACK)
    events = p.receive(l2(1, "snapshot", [("bid", "10", "1"), ("offer", "10", "1")]))
    assert isinstance(events[0], BookReset) and isinstance(events[1], Resubscribe)
    assert not p.has_book


def test_a_reconnect_starts_the_numbering_again() -> None:
    p = synced()
    p.connection_made()
    assert not p.has_book and p.sequence_num is None
    assert p.receive(DOC_ACK) == [Subscribed(("level2:BTC-USD",))]


def test_spec_maps_canonical_instruments_to_product_ids() -> None:
    assert symbol_of("ETH-BTC") == "ETH-BTC"
    assert lookup("coinbase").symbol("ETH-BTC") == "ETH-BTC"
    assert symbol_of("ethbtc") == "ETH-BTC"
    with pytest.raises(ConfigError, match="quote asset"):
        CoinbaseProtocol("zzzzzz")
    with pytest.raises(ConfigError, match="product id"):
        CoinbaseProtocol("ETH-BTC", symbol="ETH BTC")


def test_times_are_validated() -> None:
    p = synced()
    bad = l2(2, "update", [("bid", "1", "1")]).replace("2026-04-07T14:30:01.456789Z", "yesterday")
    assert isinstance(p.receive(bad)[0], Skipped)
    assert msgspec.json.decode(DOC_UPDATE)["sequence_num"] == 1


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-04-07T14:30:01Z", 1775572201000),
        ("2026-04-07T14:30:01.4Z", 1775572201400),
        ("2026-04-07T14:30:01.456789123Z", 1775572201456),
        ("1970-01-01T00:00:00.001Z", 1),
    ],
)
def test_rfc3339_times(text: str, ms: int) -> None:
    from dragonflybot.venues.coinbase import _TimeCache

    times = _TimeCache()
    assert times(text) == ms and times(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-07 14:30:01Z",
        "2026-04-07T14:30:01",
        "2026-04-07T14:30:01.Z",
        "2026-04-07T14:30:01.45xZ",
        "2026-13-07T14:30:01Z",
        "2026-04-07T25:30:01Z",
        "2026-04-07T14:30:01.\uff14Z",  # a non-ASCII digit
        "yesterday",
    ],
)
def test_bad_times_are_decode_errors(text: str) -> None:
    from dragonflybot.errors import DecodeError
    from dragonflybot.venues.coinbase import _TimeCache

    with pytest.raises(DecodeError):
        _TimeCache()(text)
