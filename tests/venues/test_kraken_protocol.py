"""Sans-I/O Kraken v2 protocol: subscribe flow, precision, checksum, truncation, failures."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import FullDepthBook, Level
from dragonflybot.core.fixed import SCALE, parse
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.sim import kraken_wire
from dragonflybot.venues import kraken_checksum
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    Ignored,
    ReconnectNow,
    Resubscribe,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
    VenueNotice,
)
from dragonflybot.venues.book_sync import MAX_FAILURES_IN_ROW
from dragonflybot.venues.kraken import KrakenProtocol, book_depth, pair_symbol, to_fixed

SYMBOL = "ETH/BTC"


def kinds(events: list[Event]) -> list[type]:
    return [type(e) for e in events]


def sent(events: list[Event]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if isinstance(e, SendText):
            out.append(json.loads(e.text))
        elif isinstance(e, Resubscribe):
            out += [json.loads(text) for text in e.frames]
    return out


def pa(price: str, qty: str) -> tuple[int, int]:
    return parse(price), parse(qty)


def lv(price: str, qty: str) -> Level:
    return Level(parse(price), parse(qty))


def live(depth: int = 10) -> tuple[KrakenProtocol, kraken_wire.KrakenBookWire]:
    """A protocol that learned its precision from the instrument channel, subscribed, and
    holds a snapshot; and the venue side of it."""
    protocol = KrakenProtocol("ETH-BTC", depth=depth)
    (first,) = sent(protocol.connection_made())
    assert first == {
        "method": "subscribe",
        "params": {"channel": "instrument", "snapshot": True},
        "req_id": 1,
    }
    assert kinds(protocol.receive(kraken_wire.subscribe_ack(1, "instrument"))) == [Ignored]
    events = protocol.receive(kraken_wire.instrument_snapshot([("BTC/USD", 1, 8), (SYMBOL, 5, 8)]))
    assert sent(events) == [
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": [SYMBOL], "depth": depth, "snapshot": True},
            "req_id": 2,
        }
    ]
    assert protocol.precision == (5, 8)
    assert not protocol.subscribed
    assert kinds(protocol.receive(kraken_wire.subscribe_ack(2, "book", SYMBOL, depth))) == [
        Subscribed
    ]
    wire = kraken_wire.KrakenBookWire(SYMBOL, depth=depth, price_precision=5, qty_precision=8)
    snap = wire.snapshot(
        [pa("0.05000", "1.5"), pa("0.04990", "2")],
        [pa("0.05010", "0.25"), pa("0.05020", "3")],
        time_ms=1_700_000_000_123,
    )
    assert kinds(protocol.receive(snap)) == [BookChanged]
    assert protocol.synced and protocol.has_book
    assert protocol.venue_seq is None  # Kraken's v2 book numbers nothing (checksum only)
    return protocol, wire


# --- naming, config -----------------------------------------------------------------------


def test_symbols_and_depths() -> None:
    assert pair_symbol("ETH-BTC") == "ETH/BTC"
    assert pair_symbol("eth-btc") == "ETH/BTC"
    assert pair_symbol("ethbtc", "ETH/BTC") == "ETH/BTC"
    assert pair_symbol("ethbtc") == "ETH/BTC"  # canonical first: v2 spells it BTC, not XBT
    with pytest.raises(ConfigError, match="set the venue's symbol"):
        pair_symbol("ETH-BTC", "ethbtc")
    assert [book_depth(n) for n in (None, 1, 10, 11, 25, 500, 1000)] == [
        10,
        10,
        10,
        25,
        25,
        500,
        1000,
    ]
    with pytest.raises(ConfigError, match="at most 1000"):
        book_depth(1001)
    with pytest.raises(ConfigError, match="both"):
        KrakenProtocol("ETH-BTC", price_precision=5)
    with pytest.raises(ConfigError, match="precision"):
        KrakenProtocol("ETH-BTC", price_precision=19, qty_precision=8)


def test_from_config() -> None:
    config = VenueConfig(name="kraken", symbol="XBT/USD", depth=20, ws_url="ws://127.0.0.1:1")
    protocol = KrakenProtocol.from_config(config, "ethbtc")
    assert (protocol.symbol, protocol.depth, protocol.ws_url) == ("XBT/USD", 25, "ws://127.0.0.1:1")
    assert protocol.streams == ("book-25:XBT/USD",)


# --- checksum formatting (shared/venues.md 4.4) ---------------------------------------------


def test_documented_v2_formatting() -> None:
    unit1 = kraken_checksum.scale_unit(1)
    unit8 = kraken_checksum.scale_unit(8)
    assert kraken_checksum.v2_digits(parse("45285.2"), unit1) == "452852"
    assert kraken_checksum.v2_digits(parse("0.001"), unit8) == "100000"
    assert kraken_checksum.v1_digits("0.00100000") == "100000"
    assert kraken_checksum.v1_digits("45285.2") == "452852"
    with pytest.raises(DecodeError, match="precision"):
        kraken_checksum.v2_digits(parse("45285.25"), unit1)


def test_documented_checksum_example_value() -> None:
    """Kraken's v1 checksum guide example book, whose checksum is published as 974947235."""
    asks = [
        ("0.05005", "0.00000500"),
        ("0.05010", "0.00000500"),
        ("0.05015", "0.00000500"),
        ("0.05020", "0.00000500"),
        ("0.05025", "0.00000500"),
        ("0.05030", "0.00000500"),
        ("0.05035", "0.00000500"),
        ("0.05040", "0.00000500"),
        ("0.05045", "0.00000500"),
        ("0.05050", "0.00000500"),
    ]
    bids = [
        ("0.05000", "0.00000500"),
        ("0.04995", "0.00000500"),
        ("0.04990", "0.00000500"),
        ("0.04980", "0.00000500"),
        ("0.04975", "0.00000500"),
        ("0.04970", "0.00000500"),
        ("0.04965", "0.00000500"),
        ("0.04960", "0.00000500"),
        ("0.04955", "0.00000500"),
        ("0.04950", "0.00000500"),
    ]
    v1 = kraken_checksum.checksum(
        [kraken_checksum.v1_token(p, q) for p, q in asks],
        [kraken_checksum.v1_token(p, q) for p, q in bids],
    )
    assert v1 == 974947235
    v2 = kraken_wire.checksum_of([pa(p, q) for p, q in bids], [pa(p, q) for p, q in asks], 5, 8)
    assert v2 == v1


@given(
    st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**12)), min_size=0, max_size=12),
    st.integers(0, 8),
    st.integers(0, 10),
)
def test_v1_tokens_of_fixed_width_strings_equal_v2_tokens(
    levels: list[tuple[int, int]], pp: int, qp: int
) -> None:
    """Any level written at the pair's width gives the same digits both ways."""
    pu = kraken_checksum.scale_unit(pp)
    qu = kraken_checksum.scale_unit(qp)
    for p, q in levels:
        price_text = _width(p, pp)
        qty_text = _width(q, qp)
        assert kraken_checksum.v1_token(price_text, qty_text) == kraken_checksum.v2_token(
            p * pu, q * qu, pu, qu
        )


def _width(scaled: int, decimals: int) -> str:
    if decimals == 0:
        return str(scaled)
    whole, frac = divmod(scaled, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


@given(st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False))
def test_to_fixed_is_exact(value: Any) -> None:
    assert to_fixed(value) == parse(format(value, "f"))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-1", "1e40", "0.0000000000000000001"])
def test_to_fixed_refuses(text: str) -> None:
    with pytest.raises(DecodeError):
        to_fixed(Decimal(text))


# --- flow -----------------------------------------------------------------------------------


def test_snapshot_update_and_event_time() -> None:
    protocol, wire = live()
    assert protocol.top(5) == (
        (lv("0.05", "1.5"), lv("0.0499", "2")),
        (lv("0.0501", "0.25"), lv("0.0502", "3")),
    )
    events = protocol.receive(
        wire.update([pa("0.05", "0"), pa("0.04995", "1")], [], time_ms=1_700_000_001_000)
    )
    assert events == [BookChanged(1_700_000_001_000)]
    assert protocol.top_bids(5) == (lv("0.04995", "1"), lv("0.0499", "2"))
    assert protocol.counters.verified == 2


def test_precision_configured_subscribes_the_book_at_once() -> None:
    protocol = KrakenProtocol("x", symbol=SYMBOL, price_precision=5, qty_precision=8)
    assert [m["params"]["channel"] for m in sent(protocol.connection_made())] == ["book"]
    assert kinds(protocol.receive(kraken_wire.instrument_snapshot([(SYMBOL, 1, 1)]))) == [Ignored]
    assert protocol.precision == (5, 8)


def test_levels_out_of_depth_are_cut_without_a_delete() -> None:
    protocol, wire = live(depth=10)
    bids = [pa(f"0.04{90 - i}00", "1") for i in range(10)]
    asks = [pa(f"0.05{10 + i}00", "1") for i in range(10)]
    assert kinds(protocol.receive(wire.snapshot(bids, asks))) == [BookChanged]
    assert protocol.full_book.depth == (10, 10)
    # A better bid pushes the 10th out: Kraken sends the new level only.
    events = protocol.receive(wire.update([pa("0.04950", "7")], []))
    assert kinds(events) == [BookChanged]
    assert protocol.full_book.depth == (10, 10)
    assert parse("0.0481") not in protocol.full_book.bids_dict()
    assert protocol.full_book.bids_dict() == dict(wire.top_bids())


def test_checksum_mismatch_discards_and_resubscribes_that_pair() -> None:
    protocol, wire = live()
    events = protocol.receive(wire.update([pa("0.04995", "1")], [], corrupt=True))
    assert kinds(events) == [BookReset, Resubscribe]
    assert isinstance(events[0], BookReset) and events[0].gap
    assert "checksum mismatch" in events[0].reason
    assert [(m["method"], m["params"]["symbol"]) for m in sent(events)] == [
        ("unsubscribe", [SYMBOL]),
        ("subscribe", [SYMBOL]),
    ]
    assert not protocol.has_book and not protocol.synced and protocol.subscribed
    # Updates still in flight for the old subscription are dropped, never applied.
    assert kinds(protocol.receive(wire.update([pa("0.0498", "1")], []))) == [Dropped]
    unsub, sub = sent(events)
    ack_unsub = kraken_wire.unsubscribe_ack(unsub["req_id"], SYMBOL, 10)
    assert kinds(protocol.receive(ack_unsub)) == [Ignored]
    assert kinds(
        protocol.receive(kraken_wire.subscribe_ack(sub["req_id"], "book", SYMBOL, 10))
    ) == [Ignored]
    assert kinds(protocol.receive(wire.snapshot(wire.top_bids(), wire.top_asks()))) == [BookChanged]
    assert protocol.synced
    assert protocol.counters.checksum_failures == 1
    assert protocol.counters.resubscribes == 1


def test_failing_again_and_again_reconnects_instead() -> None:
    protocol, wire = live()
    for _ in range(MAX_FAILURES_IN_ROW):
        events = protocol.receive(wire.snapshot(wire.top_bids(), wire.top_asks(), corrupt=True))
        assert kinds(events) == [BookReset, Resubscribe]
    events = protocol.receive(wire.snapshot(wire.top_bids(), wire.top_asks(), corrupt=True))
    assert kinds(events) == [BookReset, ReconnectNow]
    # A verified message in between starts the count again.
    protocol.connection_made()
    protocol.receive(kraken_wire.instrument_snapshot([(SYMBOL, 5, 8)]))
    assert kinds(protocol.receive(wire.snapshot(wire.top_bids(), wire.top_asks()))) == [BookChanged]


def test_subscription_errors() -> None:
    protocol = KrakenProtocol("ETH-BTC")
    protocol.connection_made()
    assert kinds(protocol.receive(kraken_wire.instrument_snapshot([("BTC/USD", 1, 8)]))) == [
        SubscriptionRejected
    ]
    protocol.connection_made()
    protocol.receive(kraken_wire.instrument_snapshot([(SYMBOL, 5, 8)]))
    events = protocol.receive(
        kraken_wire.error_reply("subscribe", 3, "Currency pair not supported")
    )
    assert events == [SubscriptionRejected("book-10:ETH/BTC", "Currency pair not supported")]
    instrument_refused = KrakenProtocol("ETH-BTC")
    instrument_refused.connection_made()
    assert kinds(instrument_refused.receive(kraken_wire.error_reply("subscribe", 1, "no"))) == [
        SubscriptionRejected
    ]


def test_refused_resubscribe_reconnects_and_refused_unsubscribe_is_a_notice() -> None:
    protocol, wire = live()
    unsub, sub = sent(protocol.receive(wire.update([], [pa("0.0503", "1")], corrupt=True)))
    assert kinds(
        protocol.receive(kraken_wire.error_reply("unsubscribe", unsub["req_id"], "x"))
    ) == [VenueNotice]
    assert kinds(protocol.receive(kraken_wire.error_reply("subscribe", sub["req_id"], "y"))) == [
        ReconnectNow
    ]


def test_precision_change_resubscribes() -> None:
    protocol, _ = live()
    same = kraken_wire.instrument_snapshot([(SYMBOL, 5, 8)], kind="update")
    assert kinds(protocol.receive(same)) == [Ignored]
    changed = kraken_wire.instrument_snapshot([(SYMBOL, 6, 8)], kind="update")
    assert kinds(protocol.receive(changed)) == [BookReset, Resubscribe]
    assert protocol.precision == (6, 8)


def test_control_frames() -> None:
    protocol, _ = live()
    assert json.loads(protocol.heartbeat()) == {"method": "ping"}
    for frame in (kraken_wire.heartbeat(), kraken_wire.status(), kraken_wire.pong(7)):
        assert kinds(protocol.receive(frame)) == [Ignored]
    assert kinds(protocol.receive('{"method":"subscribe","success":true,"req_id":99}')) == [Ignored]
    other = kraken_wire.KrakenBookWire("BTC/USD", price_precision=1, qty_precision=8)
    assert kinds(protocol.receive(other.snapshot([pa("1", "1")], []))) == [Ignored]
    assert protocol.has_book


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1,2]",
        "{}",
        '{"channel":"book","type":"delta","data":[]}',
    ],
)
def test_garbage_is_skipped_and_the_book_kept(frame: str) -> None:
    protocol, _ = live()
    assert kinds(protocol.receive(frame)) == [Skipped]
    assert protocol.has_book


@pytest.mark.parametrize(
    "level",
    [
        '{"price":-1,"qty":1}',
        '{"price":0,"qty":1}',
        '{"price":0.050001,"qty":1}',
        '{"price":"NaN","qty":1}',
        '{"price":0.05,"qty":1e-30}',
        '{"price":0.05}',
        '"x"',
    ],
)
def test_a_malformed_book_update_is_skipped_whole_and_resyncs(level: str) -> None:
    protocol, _ = live()
    before = protocol.full_book.bids_dict()
    frame = (
        '{"channel":"book","type":"update","data":[{"symbol":"ETH/BTC",'
        f'"bids":[{{"price":0.0498,"qty":1}},{level}],"asks":[],"checksum":1}}]}}'
    )
    events = protocol.receive(frame)
    assert kinds(events) == [Skipped, BookReset, Resubscribe]
    assert not protocol.has_book
    assert before != {}


def test_a_malformed_snapshot_resubscribes_since_no_other_snapshot_comes() -> None:
    protocol = KrakenProtocol("x", symbol=SYMBOL, price_precision=5, qty_precision=8)
    protocol.connection_made()
    protocol.receive(kraken_wire.subscribe_ack(1, "book", SYMBOL, 10))
    frame = '{"channel":"book","type":"snapshot","data":[{"symbol":"ETH/BTC","bids":[],"asks":[]}]}'
    assert kinds(protocol.receive(frame)) == [Skipped, BookReset, Resubscribe]


def test_bad_timestamp_is_malformed() -> None:
    protocol, wire = live()
    text = wire.update([pa("0.0498", "1")], [], time_ms=1).replace("1970-01-01T", "1970-13-01T")
    assert kinds(protocol.receive(text))[0] is Skipped


def test_scale_is_what_fixed_uses() -> None:
    assert kraken_checksum.MAX_PRECISION == SCALE


def test_instrument_data_tolerates_odd_entries_but_needs_our_precisions() -> None:
    protocol = KrakenProtocol("ETH-BTC")
    protocol.connection_made()
    frame = (
        '{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC"}],'
        '"pairs":[{"symbol":"ODD/USD","status":"delisted"},{"symbol":"ETH/BTC"}]}}'
    )
    assert kinds(protocol.receive(frame)) == [Skipped]
    assert protocol.precision is None
    good = frame.replace(
        '{"symbol":"ETH/BTC"}', '{"symbol":"ETH/BTC","price_precision":5,"qty_precision":8}'
    )
    assert [m["params"]["channel"] for m in sent(protocol.receive(good))] == ["book"]
    bad = (
        '{"channel":"instrument","type":"snapshot",'
        '"data":{"pairs":[{"symbol":"ETH/BTC","price_precision":-1}]}}'
    )
    assert kinds(protocol.receive(bad)) == [Skipped]


def test_a_failure_on_one_pair_leaves_another_pair_publishing() -> None:
    """Two pairs on one stream of frames: a bad checksum on one resyncs that one only."""
    eth, eth_wire = live()
    btc = KrakenProtocol("BTC-USD", price_precision=1, qty_precision=8)
    btc.connection_made()
    btc.receive(kraken_wire.subscribe_ack(1, "book", "BTC/USD", 10))
    btc_wire = kraken_wire.KrakenBookWire("BTC/USD", price_precision=1, qty_precision=8)
    frames = [
        btc_wire.snapshot([pa("45285.2", "1")], [pa("45285.3", "2")]),
        eth_wire.update([pa("0.0498", "1")], [], corrupt=True),
        btc_wire.update([pa("45285.1", "3")], []),
    ]
    seen = {id(eth): [], id(btc): []}  # type: dict[int, list[type]]
    for frame in frames:
        for protocol in (eth, btc):
            seen[id(protocol)] += kinds(protocol.receive(frame))
    assert BookReset in seen[id(eth)] and not eth.has_book
    assert seen[id(btc)] == [BookChanged, Ignored, BookChanged]
    assert btc.has_book and btc.counters.gaps == 0


@given(
    st.dictionaries(st.integers(1, 10**7), st.integers(1, 10**9), max_size=15),
    st.dictionaries(st.integers(1, 10**7), st.integers(1, 10**9), max_size=15),
    st.integers(0, 8),
    st.integers(0, 8),
)
def test_book_checksum_from_wire_strings_equals_checksum_from_values(
    bids: dict[int, int], asks: dict[int, int], pp: int, qp: int
) -> None:
    """A book held as fixed-width wire strings (v1) and as values at the pair's precision
    (v2, as the simulator writes it) has one checksum."""
    pu = kraken_checksum.scale_unit(pp)
    qu = kraken_checksum.scale_unit(qp)
    book = FullDepthBook(keep_wire=True)
    book.load_wire(
        [
            (p * pu, q * qu, kraken_checksum.v1_token(_width(p, pp), _width(q, qp)))
            for p, q in bids.items()
        ],
        [
            (p * pu, q * qu, kraken_checksum.v1_token(_width(p, pp), _width(q, qp)))
            for p, q in asks.items()
        ],
    )
    n = kraken_checksum.LEVELS
    from_wire = kraken_checksum.checksum(*reversed(book.wires(n)))
    from_values = kraken_wire.checksum_of(
        [(p * pu, q * qu) for p, q in sorted(bids.items(), reverse=True)],
        [(p * pu, q * qu) for p, q in sorted(asks.items())],
        pp,
        qp,
    )
    assert from_wire == from_values
