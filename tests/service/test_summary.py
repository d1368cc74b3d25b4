"""The wire form: Fixed -> double at the edge, empty sides, one encoding per state."""

from __future__ import annotations

from dragonflybot.aggregator import BookState
from dragonflybot.core.fixed import parse
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.service.messages import Summary
from dragonflybot.service.summary import PreEncoded, SummaryPublisher, encode_summary, to_summary


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
