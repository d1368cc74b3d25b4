from __future__ import annotations

import itertools

import trio
import trio.testing

from dragonflybot.aggregator import Aggregator, AggregatorStats, BookState, Fanout, tee_updates
from dragonflybot.core.fixed import parse
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueDown, VenueUpdate

from .conftest import make_view


class Recorder:
    """A publisher that keeps everything (the fan-out would conflate)."""

    def __init__(self) -> None:
        self.states: list[BookState] = []
        self.closed = False

    def publish(self, state: BookState, /) -> None:
        self.states.append(state)

    def close(self) -> None:
        self.closed = True


def test_merges_once_per_batch_and_publishes_the_batch_result() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    a1 = make_view("binance", bids=(("1.0", "1"),))
    a2 = make_view("binance", bids=(("1.2", "1"),))
    b1 = make_view("bitstamp", bids=(("1.1", "2"),))
    state = agg.apply_batch([a1, b1, a2])
    assert state is not None
    assert agg.stats.merges == 1
    assert rec.states == [state]
    assert state.book == merge([a2, b1], 5)
    assert state.live == {"binance", "bitstamp"}


def test_venue_down_excludes_the_venue_until_it_sends_a_view_again() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    a = make_view("binance", bids=(("1.0", "1"),))
    b = make_view("bitstamp", bids=(("2.0", "1"),), asks=(("2.1", "1"),))
    agg.apply_batch([a, b])
    down = agg.apply_batch([VenueDown("bitstamp", "stale")])
    assert down is not None
    assert {lv.venue for lv in down.book.bids + down.book.asks} == {"binance"}
    assert down.live == {"binance"}
    back = agg.apply_batch([b])
    assert back is not None
    assert back.book == merge([a, b], 5)


def test_all_venues_down_publishes_the_empty_book() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    agg.apply_batch([make_view("binance")])
    state = agg.apply_batch([VenueDown("binance", "disconnected")])
    assert state is not None
    assert state.book.bids == () and state.book.asks == () and state.book.spread is None
    assert not state.serving


def test_publishes_only_when_something_changed() -> None:
    rec = Recorder()
    agg = Aggregator(1, rec)
    a = make_view("binance", bids=(("1.0", "1"), ("0.9", "1")))
    assert agg.apply_batch([a]) is not None
    # Same levels again: no merge at all.
    assert agg.apply_batch([make_view("binance", bids=(("1.0", "1"), ("0.9", "1")))]) is None
    assert agg.stats.merges == 1
    # Down for a venue that is not live: nothing changed.
    assert agg.apply_batch([VenueDown("bitstamp", "x")]) is None
    # A change below the consolidated depth: merged, but the top 1 is the same -> not published.
    assert agg.apply_batch([make_view("binance", bids=(("1.0", "1"), ("0.8", "1")))]) is None
    assert agg.stats.merges == 2
    assert len(rec.states) == 1


def test_sequence_numbers_are_consecutive() -> None:
    rec = Recorder()
    agg = Aggregator(3, rec)
    for i in range(1, 6):
        agg.apply_batch([make_view("binance", bids=((f"1.{i}", "1"),))])
    assert [s.seq for s in rec.states] == [1, 2, 3, 4, 5]
    assert all(a.published_ns <= b.published_ns for a, b in itertools.pairwise(rec.states))


async def test_runner_drains_the_waiting_batch_and_merges_once() -> None:
    rec = Recorder()
    stats = AggregatorStats()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    updates = [make_view("binance", bids=((f"1.{i}", "1"),)) for i in range(1, 51)]
    for update in updates:
        send.send_nowait(update)
    send.close()
    agg = Aggregator(3, rec, stats=stats)
    await agg.run(receive)
    # One empty state at start, then one state for the whole batch of 50.
    assert stats.batches == 1
    assert stats.largest_batch == 50
    assert [s.seq for s in rec.states] == [1, 2]
    assert rec.states[0].book.bids == ()
    assert rec.states[-1].book == merge([updates[-1]], 3)
    assert rec.closed


async def test_runner_keeps_up_with_a_trickle_and_closes_the_fanout_at_the_end() -> None:
    fanout: Fanout[BookState] = Fanout()
    send, receive = trio.open_memory_channel[VenueUpdate](0)
    async with trio.open_nursery() as nursery:
        await nursery.start(Aggregator(2, fanout).run, receive)
        with fanout.subscribe() as sub:
            assert (await sub.receive()).book.bids == ()
            async with send:
                for price in ("1.1", "1.2", "1.3"):
                    await send.send(make_view("binance", bids=((price, "1"),)))
                    state = await sub.receive()
                    assert state.book.bids[0].price == parse(price)
            # Senders closed: the aggregator ends and the subscription with it.
            async for _ in sub:
                raise AssertionError("no state after the last one")
    assert fanout.closed


async def test_tee_copies_every_update_to_every_output_and_closes_them() -> None:
    send, receive = trio.open_memory_channel[VenueUpdate](10)
    outs = [trio.open_memory_channel[VenueUpdate](10) for _ in range(2)]
    updates: list[VenueUpdate] = [make_view("binance"), VenueDown("binance", "x")]
    for update in updates:
        send.send_nowait(update)
    send.close()
    await tee_updates(receive, [s for s, _ in outs])
    for _, out in outs:
        assert [u async for u in out] == updates
