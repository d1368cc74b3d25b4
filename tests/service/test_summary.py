"""The wire form: Fixed -> double at the edge, empty sides, one encoding per state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.aggregator import BookState
from dragonflybot.core.fixed import ONE, parse, to_float
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.service.messages import Summary
from dragonflybot.service.summary import (
    PreEncoded,
    SummaryEncoder,
    SummaryPublisher,
    encode_summary,
    to_summary,
)

# Zero amounts and prices, tiny and huge values, and venue names from empty to
# longer than 127 UTF-8 bytes (a two-byte length varint) are all in range.
fixed_values = st.one_of(
    st.sampled_from([0, 1, ONE, ONE // 100, 5 * ONE // 10]),
    st.integers(min_value=0, max_value=10**40),
)
venues = st.one_of(st.sampled_from(["binance", "bitstamp", ""]), st.text(max_size=60))
levels = st.builds(MergedLevel, venues, fixed_values, fixed_values)
books = st.builds(
    Consolidated,
    st.lists(levels, max_size=12).map(tuple),
    st.lists(levels, max_size=12).map(tuple),
    st.one_of(st.none(), st.just(0), st.integers(min_value=-(10**30), max_value=10**30)),
)


def protobuf_bytes(book: Consolidated) -> bytes:
    return bytes(to_summary(book).SerializeToString())


def state(seq: int, book: Consolidated, live: frozenset[str]) -> BookState:
    return BookState(seq, 0, book, live, None)


def test_to_summary_converts_exactly_rounded_doubles() -> None:
    book = Consolidated(
        (MergedLevel("binance", parse("0.05043"), parse("1.25")),),
        (MergedLevel("bitstamp", parse("0.05045"), parse("0.1")),),
        parse("0.00002"),
    )
    summary = to_summary(book)
    assert summary.spread == 0.00002
    assert (summary.bids[0].exchange, summary.bids[0].price, summary.bids[0].amount) == (
        "binance",
        0.05043,
        1.25,
    )
    assert summary.asks[0].price == 0.05045
    assert Summary.FromString(encode_summary(book)) == summary


def test_an_empty_side_has_spread_zero_and_no_sentinel() -> None:
    only_bids = Consolidated((MergedLevel("binance", parse("1"), parse("1")),), (), None)
    summary = to_summary(only_bids)
    assert summary.spread == 0.0
    assert len(summary.asks) == 0 and len(summary.bids) == 1
    empty = to_summary(Consolidated.empty())
    assert (len(empty.bids), len(empty.asks), empty.spread) == (0, 0, 0.0)


def test_a_negative_spread_is_published_as_is() -> None:
    crossed = Consolidated(
        (MergedLevel("binance", parse("1.01"), parse("1")),),
        (MergedLevel("bitstamp", parse("1.00"), parse("1")),),
        parse("1.00") - parse("1.01"),
    )
    assert to_summary(crossed).spread == -0.01


def test_pre_encoded_is_sent_as_is() -> None:
    assert PreEncoded(b"abc").SerializeToString() == b"abc"


async def test_publisher_encodes_once_for_every_subscriber_and_flags_serving_changes() -> None:
    publisher = SummaryPublisher()
    book = Consolidated((MergedLevel("binance", parse("1"), parse("1")),), (), None)
    with (
        publisher.books.subscribe() as a,
        publisher.books.subscribe() as b,
        publisher.serving.subscribe() as serving,
    ):
        publisher.publish(state(1, book, frozenset({"binance"})))
        got_a, got_b = await a.receive(), await b.receive()
        assert got_a.summary is got_b.summary  # the same bytes object: one encoding
        assert got_a.summary == encode_summary(book)
        assert await serving.receive() is True
        publisher.publish(state(2, book, frozenset({"binance", "bitstamp"})))
        assert not serving.pending  # still serving: no new health value
        publisher.publish(state(3, Consolidated.empty(), frozenset()))
        assert await serving.receive() is False
        publisher.close()
        assert (await a.receive()).state.seq == 3
        assert [x.state.seq async for x in b] == [3]


@given(st.lists(books, min_size=1, max_size=6), st.integers(min_value=1, max_value=8))
def test_encoder_bytes_are_protobufs_own(history: list[Consolidated], cache_size: int) -> None:
    # One encoder across consecutive books, with a cache small enough to be emptied
    # mid-book: cached, fresh and evicted levels must all give protobuf's bytes.
    encoder = SummaryEncoder(cache_size)
    for book in history:
        data = encoder.encode(book)
        assert data == protobuf_bytes(book)
        assert encoder.cached_levels <= 2 * cache_size
        decoded = Summary.FromString(data)
        expected_spread = to_float(book.spread) if book.spread is not None else 0.0
        assert decoded.spread == expected_spread
        for got, want in ((decoded.bids, book.bids), (decoded.asks, book.asks)):
            assert [(lv.exchange, lv.price, lv.amount) for lv in got] == [
                (lv.venue, to_float(lv.price), to_float(lv.amount)) for lv in want
            ]


@given(books)
def test_encode_summary_matches_protobuf(book: Consolidated) -> None:
    assert encode_summary(book) == protobuf_bytes(book)


def test_zero_values_are_omitted_and_a_negative_spread_kept() -> None:
    zero = MergedLevel("", 0, 0)
    book = Consolidated((zero,), (MergedLevel("b", ONE, 0),), 0)
    # Level with every field at its default: an empty message, tag and zero length.
    assert encode_summary(book) == b"\x12\x00" + b"\x1a\x0c\x0a\x01b\x11" + bytes.fromhex(
        "000000000000f03f"
    )
    crossed = Consolidated((), (), -ONE)
    assert encode_summary(crossed) == b"\x09" + bytes.fromhex("000000000000f0bf")


def test_encoder_rejects_an_empty_cache() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        SummaryEncoder(0)
