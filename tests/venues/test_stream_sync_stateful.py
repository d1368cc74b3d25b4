"""Stateful tests of the stream-synced books: Kraken v2 and OKX against the simulated venue.

Each machine drives a protocol with frames written by the simulator's builders
(``sim.kraken_wire``, ``sim.okx_wire``) while hypothesis picks snapshots, updates,
lost messages, sequence gaps, corrupted checksums, keepalives, maintenance
restarts and reconnects. The venue side's own book is the reference model. After
every step:

* the protocol holds a book exactly when the model says it must (a snapshot was
  delivered and no failure was detected since);
* a held book equals the venue's book whole while no message was lost; after a
  loss only the venue's checksum can reveal it, so a held book's checksummed top
  must then still read exactly as the venue's (or it was reported reset);
* a corrupted checksum or a broken sequence is always reported (``BookReset`` then
  the frames resubscribing, or ``ReconnectNow`` after repeated failures).
"""

from __future__ import annotations

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dragonflybot.core.book import PriceAmount
from dragonflybot.core.fixed import SCALE
from dragonflybot.sim import kraken_wire, okx_wire
from dragonflybot.venues import kraken_checksum, okx_checksum
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    ReconnectNow,
    Resubscribe,
    Subscribed,
)
from dragonflybot.venues.kraken import KrakenProtocol
from dragonflybot.venues.okx import OkxProtocol

PP, QP = 2, 3
PRICE_UNIT = 10 ** (SCALE - PP)
QTY_UNIT = 10 ** (SCALE - QP)


def levels(low: int, high: int, *, removals: bool) -> st.SearchStrategy[list[PriceAmount]]:
    price = st.integers(low, high).map(lambda k: k * PRICE_UNIT)
    qty = st.integers(0 if removals else 1, 4).map(lambda m: m * QTY_UNIT)
    if removals:
        return st.lists(st.tuples(price, qty), max_size=6)
    # Snapshots often deeper than the depth, so that cutting to it matters.
    return st.dictionaries(price, qty, min_size=0, max_size=35).map(lambda d: list(d.items()))


SNAP_BIDS = levels(1, 40, removals=False)
SNAP_ASKS = levels(41, 80, removals=False)
BID_CHANGES = levels(1, 40, removals=True)
ASK_CHANGES = levels(41, 80, removals=True)
RESET_KINDS = ([BookReset, Resubscribe], [BookReset, ReconnectNow])


def kinds(events: list[Event]) -> list[type]:
    return [type(e) for e in events]


class StreamMachine(RuleBasedStateMachine):
    """What both venues share: the model flags and the delivery check."""

    protocol: KrakenProtocol | OkxProtocol

    def __init__(self) -> None:
        super().__init__()
        self.expect_book = False
        self.diverged = False
        """A message was lost while the book was held, and no failure reported since."""
        self.unverified = False
        """Nothing delivered since that loss: the venue has not yet had a say."""

    def subscribe(self) -> None:
        raise NotImplementedError

    def reconnect(self) -> None:
        self.protocol.connection_made()
        self.subscribe()
        self.expect_book = False
        self.diverged = False
        self.unverified = False

    def lose(self) -> None:
        if self.expect_book:
            self.diverged = True
            self.unverified = True

    def deliver(self, text: str, *, must_fail: bool, snapshot: bool) -> None:
        events = self.protocol.receive(text)
        seen = kinds(events)
        if not self.expect_book and not snapshot:
            assert seen == [Dropped], events
            return
        if must_fail:
            assert seen in RESET_KINDS, events
        elif not self.diverged:
            assert seen == [BookChanged], events
        self.unverified = False
        if seen in RESET_KINDS:
            self.expect_book = False
            self.diverged = False
            if seen[1] is ReconnectNow:
                self.reconnect()
        else:
            assert seen == [BookChanged], events
            self.expect_book = True
            if snapshot:
                self.diverged = False

    @rule()
    def new_connection(self) -> None:
        self.reconnect()


class KrakenSync(StreamMachine):
    @initialize(depth=st.sampled_from([10, 25]))
    def start(self, depth: int) -> None:
        self.depth = depth
        self.kraken = KrakenProtocol("ETH-BTC", depth=depth, price_precision=PP, qty_precision=QP)
        self.protocol = self.kraken
        self.wire = kraken_wire.KrakenBookWire(
            "ETH/BTC", depth=depth, price_precision=PP, qty_precision=QP
        )
        self.reconnect()

    def subscribe(self) -> None:
        assert kinds(
            self.protocol.receive(kraken_wire.subscribe_ack(self.kraken._req_id, "book"))
        ) == [Subscribed]

    @rule(bids=SNAP_BIDS, asks=SNAP_ASKS, corrupt=st.booleans())
    def snapshot(self, bids: list[PriceAmount], asks: list[PriceAmount], corrupt: bool) -> None:
        self.deliver(
            self.wire.snapshot(bids, asks, corrupt=corrupt), must_fail=corrupt, snapshot=True
        )

    @rule(bids=BID_CHANGES, asks=ASK_CHANGES, corrupt=st.booleans(), lost=st.booleans())
    def update(
        self, bids: list[PriceAmount], asks: list[PriceAmount], corrupt: bool, lost: bool
    ) -> None:
        text = self.wire.update(bids, asks, corrupt=corrupt)
        if lost:
            self.lose()
            return
        self.deliver(text, must_fail=corrupt, snapshot=False)

    @invariant()
    def published_book_is_the_venues(self) -> None:
        if not hasattr(self, "wire"):
            return
        book = self.kraken.full_book
        assert self.protocol.has_book == self.expect_book
        if not self.expect_book:
            return
        assert book.depth[0] <= self.depth and book.depth[1] <= self.depth
        if not self.diverged:
            assert book.bids_dict() == dict(self.wire.top_bids())
            assert book.asks_dict() == dict(self.wire.top_asks())
            assert self.protocol.top(10) == (
                tuple(self.wire.top_bids()[:10]),
                tuple(self.wire.top_asks()[:10]),
            )
        if self.unverified:
            return
        n = kraken_checksum.LEVELS
        ours = "".join(book.wires(n)[1]) + "".join(book.wires(n)[0])
        unit = kraken_checksum.v2_token
        theirs = "".join(unit(p, q, PRICE_UNIT, QTY_UNIT) for p, q in self.wire.top_asks()[:n])
        theirs += "".join(unit(p, q, PRICE_UNIT, QTY_UNIT) for p, q in self.wire.top_bids()[:n])
        assert ours == theirs


class OkxSync(StreamMachine):
    @initialize(checksum=st.booleans(), sequenced=st.booleans())
    def start(self, checksum: bool, sequenced: bool) -> None:
        assume(checksum or sequenced)
        self.sequenced = sequenced
        self.okx = OkxProtocol("ETH-BTC")
        self.protocol = self.okx
        self.wire = okx_wire.OkxBookWire("ETH-BTC", checksum=checksum, sequenced=sequenced)
        self.loss_pending = False
        self.reconnect()

    def subscribe(self) -> None:
        assert kinds(self.protocol.receive(okx_wire.subscribe_ack("ETH-BTC"))) == [Subscribed]
        self.loss_pending = False

    def _deliver(self, text: str, *, corrupt: bool, gap: bool, snapshot: bool) -> None:
        chain_broken = self.sequenced and not snapshot and (gap or self.loss_pending)
        self.deliver(text, must_fail=corrupt or chain_broken, snapshot=snapshot)
        if snapshot or not self.expect_book:
            self.loss_pending = False

    @rule(bids=SNAP_BIDS, asks=SNAP_ASKS, corrupt=st.booleans())
    def snapshot(self, bids: list[PriceAmount], asks: list[PriceAmount], corrupt: bool) -> None:
        text = self.wire.snapshot(bids, asks, corrupt=corrupt)
        self._deliver(text, corrupt=corrupt, gap=False, snapshot=True)

    @rule(
        bids=BID_CHANGES,
        asks=ASK_CHANGES,
        corrupt=st.booleans(),
        gap=st.booleans(),
        lost=st.booleans(),
    )
    def update(
        self,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
        corrupt: bool,
        gap: bool,
        lost: bool,
    ) -> None:
        text = self.wire.update(bids, asks, corrupt=corrupt, gap=gap)
        if lost:
            if self.expect_book:
                self.loss_pending = True
            self.lose()
            return
        self._deliver(text, corrupt=corrupt, gap=gap, snapshot=False)

    @rule(bids=BID_CHANGES)
    def update_after_a_gap(self, bids: list[PriceAmount]) -> None:
        """A message was lost in the venue's numbering but its content was not: only the
        ``seqId`` chain can tell."""
        text = self.wire.update(bids, [], gap=True)
        self._deliver(text, corrupt=False, gap=True, snapshot=False)

    @rule()
    def keepalive(self) -> None:
        self._deliver(self.wire.keepalive(), corrupt=False, gap=False, snapshot=False)

    @rule(seq=st.integers(0, 50))
    def maintenance_restart(self, seq: int) -> None:
        self.wire.restart(seq)

    @invariant()
    def published_book_is_the_venues(self) -> None:
        if not hasattr(self, "wire"):
            return
        book = self.okx.full_book
        assert self.protocol.has_book == self.expect_book
        if not self.expect_book:
            return
        if not self.diverged:
            assert book.bids_dict() == dict(self.wire.top_bids())
            assert book.asks_dict() == dict(self.wire.top_asks())
            assert self.protocol.top(10) == (
                tuple(self.wire.top_bids(10)),
                tuple(self.wire.top_asks(10)),
            )
        if self.wire.with_checksum and not self.unverified:
            n = okx_checksum.LEVELS
            ours = okx_checksum.checksum_text(*book.wires(n))
            truth = self.wire
            theirs = okx_checksum.checksum_text(
                [okx_checksum.level_text(*truth.bids[p]) for p, _ in truth.top_bids(n)],
                [okx_checksum.level_text(*truth.asks[p]) for p, _ in truth.top_asks(n)],
            )
            assert ours == theirs


SETTINGS = settings(max_examples=80, stateful_step_count=30, deadline=None)
TestKrakenSync = KrakenSync.TestCase
TestKrakenSync.settings = SETTINGS
TestOkxSync = OkxSync.TestCase
TestOkxSync.settings = SETTINGS
