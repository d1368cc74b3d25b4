"""``BookSummaryService`` counts what its streams send and skip, for the metrics."""

from __future__ import annotations

import time

import pytest
from purerpc import RpcFailedError

from dragonflybot.aggregator import BookState, Fanout
from dragonflybot.core.merge import merge
from dragonflybot.service import BookSummaryService, EncodedBook, StreamStats


def book(seq: int, recv_ns: int | None) -> EncodedBook:
    state = BookState(seq, time.monotonic_ns(), merge([], 5), frozenset(), recv_ns)
    return EncodedBook(state, seq.to_bytes(2, "big"))


async def test_sent_conflated_and_open_streams_are_counted() -> None:
    books: Fanout[EncodedBook] = Fanout()
    stats = StreamStats()
    service = BookSummaryService(books, stats=stats)
    books.publish(book(1, time.monotonic_ns()))
    stream = service.BookSummary(None)
    assert (await stream.__anext__()).data == b"\x00\x01"
    assert (stats.open, stats.opened, stats.sent, stats.conflated) == (1, 1, 1, 0)
    # The book as it was at connection time is not a latency sample.
    assert stats.receive_to_sent.count == 0

    for seq in (2, 3, 4):
        books.publish(book(seq, time.monotonic_ns()))
    assert (await stream.__anext__()).data == b"\x00\x04"
    assert (stats.sent, stats.conflated) == (2, 2)
    assert stats.receive_to_sent.count == 1

    books.publish(book(5, None))  # no venue live: nothing to time
    assert (await stream.__anext__()).data == b"\x00\x05"
    assert stats.receive_to_sent.count == 1

    books.close()
    with pytest.raises(RpcFailedError):
        await stream.__anext__()
    assert (stats.open, stats.opened, stats.sent, stats.conflated) == (0, 1, 3, 2)


async def test_a_stream_closed_early_is_no_longer_open() -> None:
    books: Fanout[EncodedBook] = Fanout()
    service = BookSummaryService(books)
    books.publish(book(1, None))
    stream = service.BookSummary(None)
    await stream.__anext__()
    assert service.stats.open == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert service.stats.open == 0
    assert books.subscriber_count == 0
