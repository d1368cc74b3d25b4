"""Coinbase and Bybit sync, stateful: random snapshot / update / loss / restart sequences.

Each machine plays the venue: it keeps the venue's true book and sends what the venue
would (numbered messages, snapshots, deltas), sometimes loses messages in transit,
sends garbage or restarts. Whatever happens, the client's published book is either the
venue's true book, or it has none (discarded, resubscription asked for) — never a
wrong book — as soon as a message after a loss arrived (before that, no client could
know). A book that was discarded comes back with the next snapshot.
"""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dragonflybot.core.fixed import parse
from dragonflybot.venues.base import BookReset, Event, Resubscribe, Skipped
from dragonflybot.venues.bybit import BybitProtocol
from dragonflybot.venues.coinbase import CoinbaseProtocol

# Bids at 1..40, asks at 60..99: never crossed, never over Bybit's 50 levels.
bid_prices = st.integers(1, 40)
ask_prices = st.integers(60, 99)
amounts = st.sampled_from(["0", "0.0", "1", "2.5", "0.00000001", "10"])
changes = st.tuples(
    st.lists(st.tuples(bid_prices, amounts), max_size=6),
    st.lists(st.tuples(ask_prices, amounts), max_size=6),
)
books = st.tuples(
    st.dictionaries(bid_prices, amounts.filter(lambda a: parse(a) != 0), max_size=12),
    st.dictionaries(ask_prices, amounts.filter(lambda a: parse(a) != 0), max_size=12),
)

Levels = list[tuple[int, str]]


class VenueModel:
    """The venue's true book: price -> amount string per side."""

    def __init__(self) -> None:
        self.bids: dict[int, str] = {}
        self.asks: dict[int, str] = {}

    def load(self, bids: dict[int, str], asks: dict[int, str]) -> None:
        self.bids, self.asks = dict(bids), dict(asks)

    def apply(self, bids: Levels, asks: Levels) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, amount in levels:
                if parse(amount):
                    side[price] = amount
                else:
                    side.pop(price, None)

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return (
            [(parse(str(p)), parse(a)) for p, a in bids],
            [(parse(str(p)), parse(a)) for p, a in asks],
        )


def client_top(protocol: CoinbaseProtocol | BybitProtocol) -> tuple[list[object], list[object]]:
    bids, asks = protocol.top(100)
    return [(lv.price, lv.amount) for lv in bids], [(lv.price, lv.amount) for lv in asks]


class CoinbaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = CoinbaseProtocol("ETH-BTC")
        self.venue = VenueModel()
        self.next = 0
        self.unseen_loss = False
        """Messages were lost and none has arrived since that could reveal it."""

    def send(self, channel: str, events: list[dict[str, object]]) -> list[Event]:
        frame = json.dumps({"channel": channel, "sequence_num": self.next, "events": events})
        self.next += 1
        self.unseen_loss = False
        out = self.p.receive(frame)
        self.react(out)
        return out

    def react(self, out: list[Event]) -> None:
        for event in out:
            if isinstance(event, Resubscribe):
                # The venue unsubscribes and subscribes: a fresh snapshot follows.
                self.snapshot_now()

    def l2(self, kind: str, bids: Levels, asks: Levels) -> list[dict[str, object]]:
        updates = [
            {"side": side, "price_level": str(p), "new_quantity": a, "event_time": ""}
            for side, levels in (("bid", bids), ("offer", asks))
            for p, a in levels
        ]
        return [{"type": kind, "product_id": "ETH-BTC", "updates": updates}]

    def snapshot_now(self) -> None:
        self.send(
            "l2_data", self.l2("snapshot", [*self.venue.bids.items()], [*self.venue.asks.items()])
        )

    @initialize(book=books)
    def connect(self, book: tuple[dict[int, str], dict[int, str]]) -> None:
        self.p.connection_made()
        self.venue.load(*book)
        self.send("subscriptions", [{"subscriptions": {"level2": ["ETH-BTC"]}}])
        self.snapshot_now()

    @rule(change=changes)
    def update(self, change: tuple[Levels, Levels]) -> None:
        self.venue.apply(*change)
        self.send("l2_data", self.l2("update", *change))

    @rule(change=changes, lost=st.integers(1, 3))
    def lost_in_transit(self, change: tuple[Levels, Levels], lost: int) -> None:
        """Messages the client never gets (one of them changed the book)."""
        self.venue.apply(*change)
        self.next += lost
        self.unseen_loss = True

    @rule()
    def heartbeat(self) -> None:
        self.send("heartbeats", [{"current_time": "", "heartbeat_counter": self.next}])

    @rule(junk=st.sampled_from(["{", '{"channel":"l2_data","sequence_num":"x"}', "[]"]))
    def garbage(self, junk: str) -> None:
        assert isinstance(self.p.receive(junk)[0], Skipped)

    @rule()
    def reconnect(self) -> None:
        self.p.connection_made()
        assert not self.p.has_book
        self.next = 0
        self.send("subscriptions", [{"subscriptions": {"level2": ["ETH-BTC"]}}])
        self.snapshot_now()

    @invariant()
    def published_book_is_the_venues_or_none(self) -> None:
        if self.p.has_book and not self.unseen_loss:
            assert client_top(self.p) == self.venue.top()


class BybitMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = BybitProtocol("ETH-BTC")
        self.venue = VenueModel()
        self.u = 0
        self.last_delta = ""
        self.unseen_loss = False

    def frame(self, kind: str, bids: Levels, asks: Levels) -> str:
        return json.dumps(
            {
                "topic": self.p.topic,
                "type": kind,
                "ts": 1,
                "data": {
                    "s": "ETHBTC",
                    "b": [[str(p), a] for p, a in bids],
                    "a": [[str(p), a] for p, a in asks],
                    "u": self.u,
                    "seq": self.u,
                },
                "cts": 1,
            }
        )

    def receive(self, frame: str) -> None:
        self.unseen_loss = False
        out = self.p.receive(frame)
        if any(isinstance(e, Resubscribe) for e in out):
            assert isinstance(out[0], BookReset)
            self.snapshot_now()

    def snapshot_now(self) -> None:
        self.receive(self.frame("snapshot", [*self.venue.bids.items()], [*self.venue.asks.items()]))

    @initialize(book=books)
    def connect(self, book: tuple[dict[int, str], dict[int, str]]) -> None:
        self.p.connection_made()
        self.p.receive('{"success":true,"ret_msg":"subscribe","op":"subscribe"}')
        self.venue.load(*book)
        self.u = 1000
        self.snapshot_now()

    @rule(change=changes)
    def delta(self, change: tuple[Levels, Levels]) -> None:
        self.venue.apply(*change)
        self.u += 1
        self.last_delta = self.frame("delta", *change)
        self.receive(self.last_delta)

    @rule(change=changes, lost=st.integers(1, 3))
    def lost_in_transit(self, change: tuple[Levels, Levels], lost: int) -> None:
        self.venue.apply(*change)
        self.u += lost
        self.unseen_loss = True

    @rule()
    def duplicate(self) -> None:
        """A delta delivered twice: the second is stale."""
        if self.last_delta:
            self.p.receive(self.last_delta)

    @rule(book=books)
    def service_restart(self, book: tuple[dict[int, str], dict[int, str]]) -> None:
        self.venue.load(*book)
        self.u = 1
        # One ordered stream: nothing sent before the restart arrives after it.
        self.last_delta = ""
        self.snapshot_now()

    @rule()
    def resent_snapshot(self) -> None:
        self.snapshot_now()

    @rule(junk=st.sampled_from(["{", '{"topic":"orderbook.50.ETHBTC","type":1}', "7"]))
    def garbage(self, junk: str) -> None:
        assert isinstance(self.p.receive(junk)[0], Skipped)

    @invariant()
    def published_book_is_the_venues_or_none(self) -> None:
        if self.p.has_book and not self.unseen_loss:
            assert client_top(self.p) == self.venue.top()


TestCoinbaseSync = CoinbaseMachine.TestCase
TestCoinbaseSync.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestBybitSync = BybitMachine.TestCase
TestBybitSync.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
