"""Sans-I/O OKX protocol: subscribe flow, seqId chain, checksum (or its absence), failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.errors import ConfigError
from dragonflybot.sim import okx_wire
from dragonflybot.venues import okx_checksum
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
from dragonflybot.venues.okx import OkxProtocol, inst_id_of

INST = "ETH-BTC"


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


def pa(price: str, size: str) -> tuple[int, int]:
    return parse(price), parse(size)


def lv(price: str, size: str) -> Level:
    return Level(parse(price), parse(size))


def live(**wire_options: Any) -> tuple[OkxProtocol, okx_wire.OkxBookWire]:
    protocol = OkxProtocol("eth-btc")
    assert sent(protocol.connection_made()) == [
        {"op": "subscribe", "args": [{"channel": "books", "instId": INST}]}
    ]
    assert kinds(protocol.receive(okx_wire.subscribe_ack(INST))) == [Subscribed]
    wire = okx_wire.OkxBookWire(INST, **wire_options)
    snap = wire.snapshot([pa("0.05", "1.5"), pa("0.0499", "2")], [pa("0.0501", "0.25")])
    assert kinds(protocol.receive(snap)) == [BookChanged]
    assert protocol.synced
    return protocol, wire


def test_naming_and_config() -> None:
    assert inst_id_of("eth-btc") == "ETH-BTC"
    assert inst_id_of("ETH/BTC") == "ETH-BTC"
    assert inst_id_of("x", "BTC-USD-220527") == "BTC-USD-220527"
    assert inst_id_of("ethbtc") == "ETH-BTC"  # compact names split on the known quotes
    with pytest.raises(ConfigError, match="set the venue's symbol"):
        inst_id_of("ETH-BTC", "eth btc")
    with pytest.raises(ConfigError, match="25"):
        OkxProtocol("ETH-BTC", depth=10)
    protocol = OkxProtocol.from_config(VenueConfig(name="okx", symbol="UNI-USD-SWAP"), "x")
    assert protocol.streams == ("books:UNI-USD-SWAP",)
    assert protocol.heartbeat() == "ping"


def test_documented_checksum_strings() -> None:
    """shared/venues.md 6.5: both examples of the interleaved string."""
    bids = [okx_checksum.level_text("3366.1", "7"), okx_checksum.level_text("3366", "6")]
    asks = [okx_checksum.level_text("3366.8", "9"), okx_checksum.level_text("3368", "8")]
    assert okx_checksum.checksum_text(bids, asks) == "3366.1:7:3366.8:9:3366:6:3368:8"
    asks3 = [asks[0], asks[1], okx_checksum.level_text("3372", "8")]
    assert okx_checksum.checksum_text(bids[:1], asks3) == "3366.1:7:3366.8:9:3368:8:3372:8"


@given(
    st.lists(st.text("0123456789.", min_size=1, max_size=6), max_size=30),
    st.lists(st.text("0123456789.", min_size=1, max_size=6), max_size=30),
)
def test_checksum_is_a_signed_crc_of_the_interleave(bids: list[str], asks: list[str]) -> None:
    import zlib

    value = okx_checksum.checksum(bids, asks)
    assert -(2**31) <= value < 2**31
    assert value & 0xFFFFFFFF == zlib.crc32(okx_checksum.checksum_text(bids, asks).encode())
    text = okx_checksum.checksum_text(bids, asks)
    assert sorted(text.split(":")) == sorted(":".join(bids + asks).split(":"))


def test_updates_keepalive_and_restart_follow_the_chain() -> None:
    protocol, wire = live()
    assert protocol.last_seq == wire.seq
    events = protocol.receive(wire.update([pa("0.05", "0"), pa("0.0498", "1")], []))
    assert kinds(events) == [BookChanged]
    assert protocol.top_bids(3) == (lv("0.0499", "2"), lv("0.0498", "1"))
    assert kinds(protocol.receive(wire.keepalive())) == [BookChanged]
    wire.restart(5)  # maintenance: seqId goes backwards, prevSeqId still chains
    assert kinds(protocol.receive(wire.update([], [pa("0.0502", "1")]))) == [BookChanged]
    assert protocol.last_seq == 5 and protocol.venue_seq == 5
    assert kinds(protocol.receive(wire.update([], [pa("0.0503", "1")]))) == [BookChanged]
    assert protocol.counters.gaps == 0


def test_a_gap_resubscribes_that_instrument() -> None:
    protocol, wire = live()
    events = protocol.receive(wire.update([pa("0.0497", "1")], [], gap=True))
    assert kinds(events) == [BookReset, Resubscribe]
    assert isinstance(events[0], BookReset) and "sequence break" in events[0].reason
    assert [m["op"] for m in sent(events)] == ["unsubscribe", "subscribe"]
    assert protocol.counters.gaps == 1 and not protocol.has_book
    assert kinds(protocol.receive(wire.update([pa("0.0496", "1")], []))) == [Dropped]
    assert kinds(protocol.receive(okx_wire.unsubscribe_ack(INST))) == [Ignored]
    assert kinds(protocol.receive(okx_wire.subscribe_ack(INST))) == [Ignored]
    snap = wire.snapshot(wire.top_bids(), wire.top_asks())
    assert kinds(protocol.receive(snap)) == [BookChanged]
    assert protocol.full_book.bids_dict() == dict(wire.top_bids())


def test_an_update_claiming_a_fresh_sequence_is_a_break() -> None:
    protocol, wire = live()
    text = wire.update([pa("0.0497", "1")], []).replace(
        f'"prevSeqId":{wire.seq - wire.step}', '"prevSeqId":-1'
    )
    assert '"prevSeqId":-1' in text
    assert kinds(protocol.receive(text))[0] is BookReset


def test_an_update_with_seq_but_no_prev_is_a_break() -> None:
    protocol, wire = live()
    text = wire.update([pa("0.0497", "1")], []).replace(f'"prevSeqId":{wire.seq - wire.step},', "")
    assert kinds(protocol.receive(text))[0] is BookReset


def test_checksum_mismatch_resubscribes_and_zero_means_none() -> None:
    protocol, wire = live()
    events = protocol.receive(wire.update([], [pa("0.0502", "2")], corrupt=True))
    assert kinds(events) == [BookReset, Resubscribe]
    assert protocol.counters.checksum_failures == 1
    unchecked, wire0 = live(checksum=False)
    assert kinds(unchecked.receive(wire0.update([pa("0.0497", "1")], []))) == [BookChanged]
    assert unchecked.counters.verified == 0 and unchecked.counters.applied == 1


def test_no_sequence_ids_no_chain_check() -> None:
    protocol, wire = live(sequenced=False)
    assert protocol.last_seq is None and protocol.venue_seq is None
    assert kinds(protocol.receive(wire.update([pa("0.0497", "1")], []))) == [BookChanged]
    assert protocol.counters.verified == 2


def test_subscription_errors_and_notices() -> None:
    protocol = OkxProtocol("ETH-BTC")
    protocol.connection_made()
    events = protocol.receive(okx_wire.error_reply("60018", "Invalid instId"))
    assert events == [SubscriptionRejected("books:ETH-BTC", "error 60018: Invalid instId")]
    protocol, wire = live()
    protocol.receive(wire.update([], [], corrupt=True))
    assert kinds(protocol.receive(okx_wire.error_reply("60012", "x"))) == [ReconnectNow]
    assert kinds(protocol.receive(okx_wire.error_reply("60012", "y"))) == [VenueNotice]
    notice = '{"event":"notice","code":"64008","msg":"The connection will soon be closed"}'
    assert kinds(protocol.receive(notice)) == [VenueNotice]


def test_control_and_foreign_frames() -> None:
    protocol, _ = live()
    assert kinds(protocol.receive("pong")) == [Ignored]
    assert kinds(protocol.receive(b"pong")) == [Ignored]
    other = okx_wire.OkxBookWire("BTC-USDT")
    assert kinds(protocol.receive(other.snapshot([pa("1", "1")], []))) == [Ignored]
    ticker = '{"arg":{"channel":"tickers","instId":"ETH-BTC"},"data":[{"last":"1"}]}'
    assert kinds(protocol.receive(ticker)) == [Ignored]
    ack = '{"event":"subscribe","arg":{"channel":"tickers","instId":"ETH-BTC"}}'
    assert kinds(protocol.receive(ack)) == [Ignored]
    assert protocol.has_book


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("not json", Skipped),
        ("[]", Skipped),
        ("{}", Skipped),
        ('{"arg":{"channel":"books"}}', Ignored),
    ],
)
def test_garbage_is_skipped(frame: str, kind: type) -> None:
    protocol, _ = live()
    assert kinds(protocol.receive(frame)) == [kind]
    assert protocol.has_book


@pytest.mark.parametrize(
    "level",
    ['["-1","1","0","1"]', '["0","1","0","1"]', '["0.05"]', '["0.05","1e3","0","1"]', "5"],
)
def test_a_malformed_update_is_skipped_whole_and_resyncs(level: str) -> None:
    protocol, wire = live()
    frame = (
        '{"arg":{"channel":"books","instId":"ETH-BTC"},"action":"update","data":[{'
        f'"asks":[],"bids":[["0.0497","1","0","1"],{level}],"ts":"1","checksum":0,'
        f'"prevSeqId":{wire.seq},"seqId":{wire.seq + 1}}}]}}'
    )
    assert kinds(protocol.receive(frame)) == [Skipped, BookReset, Resubscribe]
    assert parse("0.0497") not in protocol.full_book.bids_dict()
