"""ViewPublisher over a diff book: the identity shortcut must never hide or invent a change."""

from __future__ import annotations

import json
from typing import Any

import trio

from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.stats import FeedStats
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues.base import BookChanged, Event, FetchSnapshot, VenueProtocol
from dragonflybot.venues.binance import BinanceProtocol


def side(*levels: tuple[str, str]) -> Side:
    return tuple(Level(parse(p), parse(a)) for p, a in levels)


def update(first: int, bids: Any = (), asks: Any = ()) -> str:
    data = {"e": "depthUpdate", "E": 1000 + first, "s": "ETHBTC", "U": first, "u": first}
    return json.dumps({"stream": "ethbtc@depth@100ms", "data": data | {"b": bids, "a": asks}})


def synced() -> BinanceProtocol:
    protocol = BinanceProtocol("ethbtc", mode="depth")
    protocol.connection_made()
    (fetch,) = [e for e in protocol.receive('{"result":null,"id":1}') if type(e) is FetchSnapshot]
    body = {"lastUpdateId": 10, "bids": [["3", "1"], ["2", "1"], ["1", "1"]], "asks": []}
    protocol.snapshot_received(fetch.token, json.dumps(body).encode())
    return protocol


def taken(slot: Mailbox[VenueUpdate]) -> VenueUpdate | None:
    try:
        return slot.take_nowait()
    except trio.WouldBlock:
        return None


def test_diff_book_changes_are_forwarded_exactly_when_the_top_n_moves() -> None:
    slot = Mailbox[VenueUpdate]()
    stats = FeedStats()
    publisher = ViewPublisher("binance", 2, slot, stats)
    protocol = synced()
    assert publisher.publish(protocol, 1, 100)
    # Each view carries the venue's update id of the book it shows (the snapshot's
    # lastUpdateId, then the ``u`` of the event that moved the top N).
    assert taken(slot) == VenueView("binance", side(("3", "1"), ("2", "1")), (), 1, 100, 10)

    def step(first: int, bids: Any, asks: Any = ()) -> bool:
        assert protocol.receive(update(first, bids, asks)) == [BookChanged(1000 + first)]
        return publisher.publish(protocol, first, first)

    assert not step(11, [["1", "5"], ["0.5", "1"]])  # behind the top 2
    assert not step(12, [["2", "1"]])  # a repeated amount
    assert step(13, [["2", "4"]])
    assert taken(slot) == VenueView("binance", side(("3", "1"), ("2", "4")), (), 13, 13, 13)
    # Changed and changed back between two reads: new tuples, equal levels, nothing to send.
    assert protocol.receive(update(14, [["2.5", "1"]])) == [BookChanged(1014)]
    assert not step(15, [["2.5", "0"]])
    assert taken(slot) is None
    assert step(16, [], [["9", "1"]])
    assert taken(slot) == VenueView(
        "binance", side(("3", "1"), ("2", "4")), side(("9", "1")), 16, 16, 16
    )
    assert stats.forwarded == 3


class TopOnly(VenueProtocol):
    """A protocol with only ``top_bids``/``top_asks``: ``top`` comes from the interface."""

    def __init__(self, bids: Side) -> None:
        self.bids = bids

    def connection_made(self) -> list[Event]:
        return []

    def receive(self, frame: str | bytes) -> list[Event]:
        return []

    @property
    def subscribed(self) -> bool:
        return True

    @property
    def synced(self) -> bool:
        return True

    @property
    def has_book(self) -> bool:
        return True

    def top_bids(self, n: int) -> Side:
        return self.bids[:n]

    def top_asks(self, n: int) -> Side:
        return ()


def test_a_protocol_without_its_own_top_is_read_through_top_bids_and_top_asks() -> None:
    slot = Mailbox[VenueUpdate]()
    publisher = ViewPublisher("v", 1, slot, FeedStats())
    protocol = TopOnly(side(("5", "1"), ("4", "1")))
    assert publisher.publish(protocol, None, 1)
    assert taken(slot) == VenueView("v", side(("5", "1")), (), None, 1, None)  # no sequence
    protocol.bids = side(("5", "1"), ("3", "1"))  # a new tuple, the same top 1
    assert not publisher.publish(protocol, None, 2)
    protocol.bids = side(("6", "1"))
    assert publisher.publish(protocol, None, 3)
