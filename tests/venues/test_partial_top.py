"""Partial parsing of top-N snapshots (``venues.top_levels``) against the full parser.

The same frame goes to a protocol that parses every level (no ``read_depth``) and to
one told it is read ``n`` deep. The contract (docs/performance.md, "Round two"):

* when the full parser accepts a frame, the partial one accepts it with exactly the
  same top ``n``;
* when the frame's levels beyond the first ``n`` are sound, both take exactly the same
  decision (skip, crossed reset, drop, change) and the same top ``n``;
* the partial parser is never stricter, and when it accepts a frame the full parser
  skipped, the fault lies beyond the first ``n`` levels: the full parser accepts the
  same frame cut to them, with the same top ``n``;
* the change filter stays exact: a change beyond depth ``n`` publishes nothing, a
  change within it publishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueUpdate
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.stats import FeedStats
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues.base import BookChanged, BookReset, Dropped, Event, Skipped
from dragonflybot.venues.binance import BinanceProtocol
from dragonflybot.venues.bitstamp import BitstampProtocol
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.top_levels import TopSide

AnyProtocol = BookProtocol[Any]

SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

MALFORMED_LEVELS = (
    '[1.5,"2"]',
    '["1.2.3","1"]',
    '["1]","2"]',
    '["7","1]"]',
    '["1","2","3"]',
    '["1"]',
    "null",
    '["-1","2"]',
    '[ "5" , "]]" ]',
    '["\\"]","1"]',
    "[]",
    "{}",
)
AMOUNTS = ("0", "0.00000000", "1.5", "2", "10.25", "0.001")


def level_text(price: int, amount: str, spaced: bool) -> str:
    text = f"{price // 100}.{price % 100:02d}"
    return f'[ "{text}" , "{amount}" ]' if spaced else f'["{text}","{amount}"]'


@st.composite
def sides(draw: st.DrawFn, *, sound_from: int | None = None) -> tuple[str, str]:
    """Bids and asks JSON arrays: mostly ordered decimal levels, some zero amounts, and
    (only before index ``sound_from``, when given) malformed or out-of-order levels."""

    def side(low: int, high: int, descending: bool) -> str:
        count = draw(st.integers(0, 24))
        prices = sorted(
            draw(st.lists(st.integers(low, high), min_size=count, max_size=count, unique=True)),
            reverse=descending,
        )
        levels = []
        for i, price in enumerate(prices):
            may_break = sound_from is None or i < sound_from
            amount = draw(st.sampled_from(AMOUNTS))
            text = level_text(price, amount, draw(st.booleans()))
            if may_break and draw(st.integers(0, 12)) == 0:
                text = draw(st.sampled_from(MALFORMED_LEVELS))
            levels.append(text)
        if len(levels) > 1 and draw(st.integers(0, 8)) == 0:
            i = draw(st.integers(0, len(levels) - 2))
            if sound_from is None or i + 1 < sound_from:
                levels[i], levels[i + 1] = levels[i + 1], levels[i]  # out of order
        return "[" + ",".join(levels) + "]"

    # Bids and asks overlap now and then, for crossed tops.
    return side(10_000, 20_500, True), side(19_500, 30_000, False)


def bitstamp_frame(bids: str, asks: str, micros: int = 1_700_000_000_000_000) -> str:
    data = f'{{"timestamp":"1","microtimestamp":"{micros}","bids":{bids},"asks":{asks}}}'
    return f'{{"event":"data","channel":"order_book_ethbtc","data":{data}}}'


def binance_frame(bids: str, asks: str) -> str:
    data = f'{{"lastUpdateId":1,"bids":{bids},"asks":{asks}}}'
    return f'{{"stream":"ethbtc@depth20@100ms","data":{data}}}'


def bitstamp() -> AnyProtocol:
    protocol = BitstampProtocol("ETH-BTC", mode="top")
    protocol.connection_made()
    return protocol


def binance() -> AnyProtocol:
    protocol = BinanceProtocol("ETH-BTC", mode="top", levels=20)
    protocol.connection_made()
    return protocol


VENUES: dict[str, tuple[Callable[[], AnyProtocol], Callable[[str, str], str]]] = {
    "bitstamp": (bitstamp, bitstamp_frame),
    "binance": (binance, binance_frame),
}


def decision(events: list[Event]) -> type[Event]:
    assert len(events) == 1, events
    kind = type(events[0])
    assert kind in (BookChanged, BookReset, Skipped, Dropped), events
    return kind


def run_both(
    venue: str, frame: str, n: int
) -> tuple[AnyProtocol, list[Event], AnyProtocol, list[Event]]:
    make, _ = VENUES[venue]
    full = make()
    partial = make()
    partial.read_depth(n)
    return full, full.receive(frame), partial, partial.receive(frame)


def cut(side: str, n: int) -> str:
    """A side as far as the partial parser reads it: its first ``n`` levels when they all
    are well-formed with a nonzero amount, else the whole side (it falls back to all)."""
    levels = json.loads(side)
    head = levels[:n]
    if len(head) == n and all(
        isinstance(lv, list) and len(lv) == 2 and lv[1] not in ("0", "0.00000000") for lv in head
    ):
        return json.dumps(head)
    return side


@pytest.mark.parametrize("venue", sorted(VENUES))
@SETTINGS
@given(data=st.data(), n=st.integers(1, 25))
def test_same_decision_and_top_when_deep_levels_are_sound(
    venue: str, data: st.DataObject, n: int
) -> None:
    bids, asks = data.draw(sides(sound_from=n))
    frame = VENUES[venue][1](bids, asks)
    full, full_events, partial, partial_events = run_both(venue, frame, n)
    assert decision(partial_events) is decision(full_events)
    assert partial.top(n) == full.top(n)
    assert partial.has_book == full.has_book


@pytest.mark.parametrize("venue", sorted(VENUES))
@SETTINGS
@given(data=st.data(), n=st.integers(1, 25))
def test_never_stricter_and_exact_whenever_full_accepts(
    venue: str, data: st.DataObject, n: int
) -> None:
    bids, asks = data.draw(sides())
    make_frame = VENUES[venue][1]
    frame = make_frame(bids, asks)
    full, full_events, partial, partial_events = run_both(venue, frame, n)
    full_kind, partial_kind = decision(full_events), decision(partial_events)
    if full_kind is not Skipped:
        assert partial_kind is full_kind
        assert partial.top(n) == full.top(n)
    elif partial_kind is not Skipped:
        # Accepted only because the fault is deeper than n: the full parser agrees on
        # the frame cut to its first n levels a side.
        short, short_events, _, _ = run_both(venue, make_frame(cut(bids, n), cut(asks, n)), n)
        assert decision(short_events) is partial_kind
        assert short.top(n) == partial.top(n)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 25))
def test_top_side_is_the_full_sides_head(data: st.DataObject, n: int) -> None:
    bids, _ = data.draw(sides(sound_from=0))
    raw = msgspec.Raw(bids.encode())
    levels = BitstampProtocol("ETH-BTC")._levels
    full = [lv for lv in levels(msgspec.json.decode(bids, type=list[tuple[str, str]])) if lv[1]]
    reader = TopSide(levels)
    for _ in range(2):  # the second read reuses the first one's head
        assert list(reader.read(raw, n)[:n]) == full[:n]


def test_malformed_json_beyond_depth_is_still_rejected() -> None:
    bids = '[["2.00","1"],["1.00","1"],["0.50",]]'
    frame = bitstamp_frame(bids, '[["3.00","1"]]')
    _, full_events, partial, partial_events = run_both("bitstamp", frame, 1)
    assert decision(full_events) is Skipped
    assert decision(partial_events) is Skipped
    assert not partial.has_book


def test_malformed_level_beyond_depth_is_not_read() -> None:
    """The documented difference: a bad level deeper than the depth read is never parsed."""
    bids = '[["2.00","1"],["1.00","1"],["x","1"]]'
    frame = bitstamp_frame(bids, '[["3.00","1"]]')
    _, full_events, partial, partial_events = run_both("bitstamp", frame, 2)
    assert decision(full_events) is Skipped
    assert decision(partial_events) is BookChanged
    assert [lv.price for lv in partial.top(2)[0]] == [parse("2.00"), parse("1.00")]


@pytest.mark.parametrize("venue", sorted(VENUES))
@SETTINGS
@given(
    depth=st.integers(1, 12),
    changed_at=st.integers(0, 19),
    new_amount=st.sampled_from(("3.5", "0.25", "0")),
)
def test_change_filter_is_exact(venue: str, depth: int, changed_at: int, new_amount: str) -> None:
    make, make_frame = VENUES[venue]

    def side(amounts: list[str], base: int, step: int) -> str:
        return (
            "["
            + ",".join(level_text(base + step * i, a, False) for i, a in enumerate(amounts))
            + "]"
        )

    before = ["1"] * 20
    after = list(before)
    after[changed_at] = new_amount
    protocol = make()
    protocol.read_depth(depth)
    slot = Mailbox[VenueUpdate]()
    publisher = ViewPublisher(protocol.venue, depth, slot, FeedStats())
    asks = side(["1"] * 20, 20_000, 10)
    assert decision(protocol.receive(make_frame(side(before, 19_000, -10), asks))) is BookChanged
    assert publisher.publish(protocol, None, 0)
    frame = make_frame(side(after, 19_000, -10), asks)
    if venue == "bitstamp":
        frame = bitstamp_frame(side(after, 19_000, -10), asks, micros=1_700_000_000_000_001)
    assert decision(protocol.receive(frame)) is BookChanged
    # A zero amount removes the level: the levels after it move up into the top N.
    assert publisher.publish(protocol, None, 0) is (changed_at < depth)


@st.composite
def side_texts(draw: st.DrawFn, descending: bool) -> list[tuple[int, str]]:
    """One side's levels as (price, text), ordered best first, some zero amounts."""
    low, high = (10_000, 20_500) if descending else (19_500, 30_000)
    count = draw(st.integers(0, 24))
    prices = sorted(
        draw(st.lists(st.integers(low, high), min_size=count, max_size=count, unique=True)),
        reverse=descending,
    )
    return [(p, level_text(p, draw(st.sampled_from(AMOUNTS)), draw(st.booleans()))) for p in prices]


@st.composite
def next_side(
    draw: st.DrawFn, levels: list[tuple[int, str]], n: int, descending: bool
) -> list[tuple[int, str]]:
    """The side of the next frame: mostly the last one with a change (or none), the way
    a snapshot stream moves; faults (malformed, out of order) only within the first n,
    so the full parser's decision is the partial one's."""
    levels = list(levels)
    op = draw(st.sampled_from(("same", "same", "amount", "remove", "malformed", "swap", "new")))
    if op == "new":
        return draw(side_texts(descending))
    if not levels or op == "same":
        return levels
    i = draw(st.integers(0, len(levels) - 1))
    if op == "amount":
        price = levels[i][0]
        levels[i] = (price, level_text(price, draw(st.sampled_from(AMOUNTS)), False))
    elif op == "remove":
        del levels[i]
    elif op == "malformed" and i < n:
        levels[i] = (levels[i][0], draw(st.sampled_from(MALFORMED_LEVELS)))
    elif op == "swap" and i + 1 < min(n, len(levels)):
        levels[i], levels[i + 1] = levels[i + 1], levels[i]
    return levels


@pytest.mark.parametrize("venue", sorted(VENUES))
@SETTINGS
@given(data=st.data(), n=st.integers(1, 12))
def test_a_stream_of_frames_keeps_decisions_tops_and_changes_exact(
    venue: str, data: st.DataObject, n: int
) -> None:
    """Frame after frame on one protocol each (the partial reader reuses what it read
    before: an unchanged head, known level texts): the same decision, top N and change
    filter outcome as the full parser at every frame."""
    make, make_frame = VENUES[venue]
    full, partial = make(), make()
    partial.read_depth(n)
    publishers = [
        ViewPublisher(p.venue, n, Mailbox[VenueUpdate](), FeedStats()) for p in (full, partial)
    ]
    bids = data.draw(side_texts(True))
    asks = data.draw(side_texts(False))
    micros = 1_700_000_000_000_000
    for _ in range(data.draw(st.integers(1, 12))):
        text_bids = "[" + ",".join(t for _, t in bids) + "]"
        text_asks = "[" + ",".join(t for _, t in asks) + "]"
        if venue == "bitstamp":
            micros += data.draw(st.sampled_from((1, 1, 1, 0, -1)))
            frame = bitstamp_frame(text_bids, text_asks, micros)
        else:
            frame = make_frame(text_bids, text_asks)
        kinds = [decision(p.receive(frame)) for p in (full, partial)]
        assert kinds[1] is kinds[0], frame
        assert partial.top(n) == full.top(n)
        assert partial.has_book == full.has_book
        changed = [
            p.has_book and pub.publish(p, None, 0)
            for p, pub in zip((full, partial), publishers, strict=True)
        ]
        assert changed[1] == changed[0]
        bids = data.draw(next_side(bids, n, True))
        asks = data.draw(next_side(asks, n, False))


def test_an_unchanged_head_is_the_same_side() -> None:
    """The reuse the speed comes from: a frame whose first n levels are byte for byte the
    last frame's gives the book the very same tuple, a change deeper than n too."""
    protocol = bitstamp()
    protocol.read_depth(2)
    asks = '[["3.00","1"],["3.10","1"],["3.20","1"]]'
    protocol.receive(bitstamp_frame('[["2.00","1"],["1.00","1"],["0.50","1"]]', asks))
    first = protocol.top(2)
    frame = bitstamp_frame('[["2.00","1"],["1.00","1"],["0.40","7"]]', asks, 1_700_000_000_000_001)
    assert decision(protocol.receive(frame)) is BookChanged
    assert protocol.top(2)[0] is first[0] and protocol.top(2)[1] is first[1]
    frame = bitstamp_frame('[["2.00","1"],["1.00","2"],["0.40","7"]]', asks, 1_700_000_000_000_002)
    assert decision(protocol.receive(frame)) is BookChanged
    assert [lv.amount for lv in protocol.top(2)[0]] == [parse("1"), parse("2")]


def test_a_short_side_is_reused_only_whole() -> None:
    """A side of fewer levels than read is the same only as a whole: the next frame may
    add levels after them, and those are read."""
    protocol = bitstamp()
    protocol.read_depth(3)
    asks = '[["3.00","1"]]'
    protocol.receive(bitstamp_frame('[["2.00","1"],["1.00","1"]]', asks))
    assert len(protocol.top(3)[0]) == 2
    frame = bitstamp_frame('[["2.00","1"],["1.00","1"],["0.50","1"]]', asks, 1_700_000_000_000_001)
    assert decision(protocol.receive(frame)) is BookChanged
    assert [lv.price for lv in protocol.top(3)[0]] == [parse(p) for p in ("2.00", "1.00", "0.50")]
