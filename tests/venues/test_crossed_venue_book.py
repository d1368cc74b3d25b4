"""A venue's own crossed or locked book is wrong: it is discarded and resynced at once.

Bitstamp diffs carry no sequence number, so a lost diff cannot be seen; a phantom level
it leaves behind can cross the book. Whatever sequence of diffs is lost, a book that
crosses is never publishable: the protocol resets it and fetches a new snapshot.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.venues.base import BookChanged, BookReset, Event, FetchSnapshot, Subscribed
from dragonflybot.venues.binance import BinanceProtocol
from dragonflybot.venues.bitstamp import BitstampProtocol
from dragonflybot.venues.book_sync import CROSSED

PRICES = [f"{p}" for p in range(90, 111)]
level = st.tuples(st.sampled_from(PRICES), st.sampled_from(["0", "1", "2.5"]))
# A diff changes a few levels per side; ``lost`` says whether it is delivered.
diffs = st.lists(
    st.tuples(st.lists(level, max_size=3), st.lists(level, max_size=3), st.booleans()),
    max_size=40,
)


def diff(micros: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> str:
    payload = {"microtimestamp": str(micros), "bids": bids, "asks": asks}
    return json.dumps({"event": "data", "channel": "diff_order_book_ethbtc", "data": payload})


def synced_bitstamp() -> tuple[BitstampProtocol, int]:
    protocol = BitstampProtocol("ethbtc", mode="depth")
    protocol.connection_made()
    ack = {"event": "bts:subscription_succeeded", "channel": protocol.channel, "data": {}}
    assert [type(e) for e in protocol.receive(json.dumps(ack))] == [Subscribed]
    (fetch,) = protocol.receive(diff(1, [], []))
    assert isinstance(fetch, FetchSnapshot)
    body = {
        "microtimestamp": "2",
        "bids": [[p, "1"] for p in PRICES[:10][::-1]],  # 90..99
        "asks": [[p, "1"] for p in PRICES[11:]],  # 101..110
    }
    protocol.snapshot_received(fetch.token, json.dumps(body).encode())
    assert protocol.has_book
    return protocol, fetch.token


def crossed(protocol: BitstampProtocol | BinanceProtocol) -> bool:
    bids, asks = protocol.top(1)
    return bool(bids) and bool(asks) and bids[0].price >= asks[0].price


@settings(max_examples=300, deadline=None)
@given(diffs)
def test_any_lost_diffs_that_cross_the_book_exclude_and_resync_it(
    steps: list[tuple[list[tuple[str, str]], list[tuple[str, str]], bool]],
) -> None:
    protocol, _ = synced_bitstamp()
    # The venue's true book (every diff) and what the feed saw (the delivered ones).
    micros = 10
    for bids, asks, lost in steps:
        micros += 1
        if lost:
            continue
        events: list[Event] = protocol.receive(diff(micros, bids, asks))
        resets = [e for e in events if isinstance(e, BookReset)]
        if resets:
            # Crossed: discarded at once (the venue goes down), a snapshot is requested.
            assert resets[0].reason == CROSSED
            assert any(isinstance(e, FetchSnapshot) for e in events)
            assert not protocol.has_book
            assert protocol.counters.crossed >= 1
            return
        # No publishable book is ever crossed with itself.
        if protocol.has_book:
            assert any(isinstance(e, BookChanged) for e in events) or not events
            assert not crossed(protocol)


def test_crossing_diff_resets_and_the_next_snapshot_restores() -> None:
    protocol, _ = synced_bitstamp()
    events = protocol.receive(diff(20, [("105", "1")], []))  # a phantom bid above the asks
    assert [type(e) for e in events] == [BookReset, FetchSnapshot]
    assert not protocol.has_book and protocol.counters.integrity_failures == 1
    fetch = events[1]
    assert isinstance(fetch, FetchSnapshot)
    protocol.receive(diff(21, [], []))
    body = {"microtimestamp": "22", "bids": [["99", "1"]], "asks": [["101", "1"]]}
    after = protocol.snapshot_received(fetch.token, json.dumps(body).encode())
    assert any(isinstance(e, BookChanged) for e in after)
    assert protocol.has_book and not crossed(protocol)


def test_a_crossed_top_n_message_is_never_published() -> None:
    protocol = BinanceProtocol("ethbtc", mode="top")
    protocol.connection_made()
    protocol.receive(json.dumps({"result": None, "id": 1}))
    stream = protocol.stream

    def partial(bids: list[list[str]], asks: list[list[str]]) -> str:
        data = {"lastUpdateId": 1, "bids": bids, "asks": asks}
        return json.dumps({"stream": stream, "data": data})

    assert [type(e) for e in protocol.receive(partial([["1.0", "1"]], [["1.1", "1"]]))] == [
        BookChanged
    ]
    events = protocol.receive(partial([["1.1", "1"]], [["1.1", "1"]]))  # locked
    assert [type(e) for e in events] == [BookReset] and not protocol.has_book
    assert protocol.counters.crossed == 1
    assert [type(e) for e in protocol.receive(partial([["1.0", "1"]], [["1.2", "1"]]))] == [
        BookChanged
    ]
    assert protocol.has_book
