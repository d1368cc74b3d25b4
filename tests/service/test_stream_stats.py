"""``BookSummaryService`` counts what its streams send and skip, for the metrics."""

from __future__ import annotations

import itertools
import time

import pytest
import trio
import trio.testing
from purerpc import RpcFailedError

from dragonflybot.aggregator import BookState, Fanout
from dragonflybot.core.merge import merge
from dragonflybot.errors import ConfigError
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
    assert (await stream.__anext__()).data[5:] == b"\x00\x01"
    assert (stats.open, stats.opened, stats.sent, stats.conflated) == (1, 1, 1, 0)
    # The book as it was at connection time is not a latency sample.
    assert stats.receive_to_sent.count == 0

    for seq in (2, 3, 4):
        books.publish(book(seq, time.monotonic_ns()))
    # Counted when the slot is overwritten, while the stream is still stuck.
    assert stats.conflated == 2
    assert (await stream.__anext__()).data[5:] == b"\x00\x04"
    assert (stats.sent, stats.conflated) == (2, 2)
    assert stats.receive_to_sent.count == 1

    books.publish(book(5, None))  # no venue live: nothing to time
    assert (await stream.__anext__()).data[5:] == b"\x00\x05"
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


async def test_a_capped_stream_sends_at_most_its_rate_and_always_the_newest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At 10 Summaries/s a stream of a book published every 10 ms gets one state per
    100 ms, each the newest at that moment; the rest are counted as conflated."""
    books: Fanout[EncodedBook] = Fanout()
    service = BookSummaryService(books, max_rate=10)
    received: list[tuple[float, int]] = []

    async def publish() -> None:
        # Seq 1 at 0 s, then seq k at 5 ms + (k - 2) * 10 ms: never at the instant a
        # stream's interval ends, so "the newest at that moment" has one answer.
        books.publish(book(1, None))
        await trio.sleep(0.005)
        for seq in range(2, 101):
            books.publish(book(seq, None))
            await trio.sleep(0.01)
        books.close()

    async def consume() -> None:
        with pytest.raises(RpcFailedError):
            async for message in service.BookSummary(None):
                received.append((trio.current_time(), int.from_bytes(message.data[5:], "big")))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish)
        nursery.start_soon(consume)
    times = [t - start for t, _ in received]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The first tick of the stream's phase may come early (the ticker is shared); from
    # then on its ticks are 100 ms apart.
    assert gaps[0] > 0
    assert min(gaps[1:]) >= 0.1 - 1e-9
    assert 10 <= len(received) <= 12  # ~1 s of publications at 10/s
    newest = [1 if t < 0.005 else min(100, int((t - 0.005) / 0.01 + 1e-9) + 2) for t in times]
    assert [seq for _, seq in received] == newest
    assert service.stats.sent == len(received)
    assert service.stats.conflated == received[-1][1] - len(received)


def test_a_negative_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_rate"):
        BookSummaryService(Fanout(), max_rate=-1)
