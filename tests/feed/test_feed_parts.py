"""The feed's small parts without sockets: handoff slot, burst limiter, change forwarder."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.errors import (
    ConfigError,
    ReconnectRequested,
    SubscriptionError,
    TransportError,
)
from dragonflybot.feed.handoff import forward
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.runner import _pick
from dragonflybot.feed.session import excerpt
from dragonflybot.feed.stats import FeedStats
from dragonflybot.feed.throttle import BurstLimiter
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues.base import BookChanged
from dragonflybot.venues.binance import BinanceProtocol


async def test_latest_value_keeps_only_the_newest() -> None:
    slot = Mailbox[int]()
    assert slot.put(1) is False
    assert slot.put(2) is True  # replaced 1, never taken
    assert await slot.get() == 2
    got: list[int] = []

    async def taker() -> None:
        got.append(await slot.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(taker)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # waits while empty
        slot.put(3)
    assert got == [3]


async def test_forward_moves_newest_into_a_busy_channel() -> None:
    slot = Mailbox[int]()
    send, recv = trio.open_memory_channel[int](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward, slot, send)
        slot.put(1)
        await trio.testing.wait_all_tasks_blocked()  # forwarder now blocked sending 1
        for value in range(2, 10):
            slot.put(value)
        assert await recv.receive() == 1
        assert await recv.receive() == 9
        nursery.cancel_scope.cancel()


async def test_put_sends_straight_into_a_channel_with_room() -> None:
    slot = Mailbox[int]()
    send, recv = trio.open_memory_channel[int](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward, slot, send)
        await trio.testing.wait_all_tasks_blocked()
        assert slot.put(1) is False
        assert recv.receive_nowait() == 1  # no scheduler round through the forwarder
        slot.put(2)  # fills the buffer
        slot.put(3)  # held in the slot; the forwarder waits to send it
        await trio.testing.wait_all_tasks_blocked()
        assert slot.put(4) is False  # the forwarder took 3 and is blocked sending it
        assert slot.put(5) is True  # replaced 4
        assert [await recv.receive() for _ in range(3)] == [2, 3, 5]
        nursery.cancel_scope.cancel()
    assert slot.put(6) is False  # no forwarder: only the slot
    assert await slot.get() == 6


@settings(deadline=None, max_examples=60)
@given(
    buffer=st.integers(0, 3),
    script=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), min_size=1, max_size=40),
)
async def test_direct_sends_never_reorder_and_the_newest_arrives(
    buffer: int, script: list[tuple[int, int]]
) -> None:
    """Whatever the interleaving of puts and receives, values arrive in order, the last one
    always arrives, and nothing is delivered twice."""
    slot = Mailbox[int]()
    send, recv = trio.open_memory_channel[int](buffer)
    got: list[int] = []
    last = sum(puts for puts, _ in script)

    async def consume() -> None:
        for _, pause in script:
            for _ in range(pause):
                await trio.lowlevel.checkpoint()
            got.append(await recv.receive())
            if got[-1] == last:
                return
        while got[-1] != last:
            got.append(await recv.receive())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward, slot, send)
            nursery.start_soon(consume)
            value = 0
            for puts, pause in script:
                for _ in range(puts):
                    value += 1
                    slot.put(value)
                for _ in range(pause + 1):
                    await trio.lowlevel.checkpoint()
            while not got or got[-1] != last:
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    assert got == sorted(set(got))
    assert got[-1] == last


def test_burst_limiter_reports_first_and_counts_the_rest() -> None:
    limiter = BurstLimiter(1.0)
    assert limiter.allow(10.0) == 0
    assert limiter.allow(10.2) is None
    assert limiter.allow(10.9) is None
    assert limiter.allow(11.0) == 2
    assert limiter.allow(20.0) == 0


def side(*prices: str) -> Side:
    return tuple(Level(parse(p), parse("1")) for p in prices)


def set_book(protocol: BinanceProtocol, *bids: str) -> None:
    data = {"lastUpdateId": 1, "bids": [[p, "1"] for p in bids], "asks": []}
    frame = json.dumps({"stream": protocol.stream, "data": data})
    assert protocol.receive(frame) == [BookChanged(None)]


def drain(slot: Mailbox[VenueUpdate]) -> VenueUpdate | None:
    try:
        return slot.take_nowait()
    except trio.WouldBlock:
        return None


def test_publisher_forwards_only_top_n_changes_and_reports_down_once() -> None:
    slot = Mailbox[VenueUpdate]()
    stats = FeedStats()
    publisher = ViewPublisher("v", 2, slot, stats)
    protocol = BinanceProtocol("ethbtc")
    # Down before anything was published: nothing to tell the aggregator.
    publisher.down("disconnected")
    assert drain(slot) is None
    set_book(protocol, "3", "2", "1")
    assert publisher.publish(protocol, 7, 100)
    assert drain(slot) == VenueView("v", side("3", "2"), (), 7, 100, 1)  # lastUpdateId 1
    set_book(protocol, "3", "2", "0.5")  # below the top 2
    assert not publisher.publish(protocol, 8, 101)
    assert drain(slot) is None
    publisher.down("stale")
    assert drain(slot) == VenueDown("v", "stale")
    publisher.down("disconnected: gone")  # already down
    assert drain(slot) is None and publisher.down_reason == "disconnected: gone"
    assert publisher.publish(protocol, 9, 102)  # same levels, but it was down
    assert drain(slot) == VenueView("v", side("3", "2"), (), 9, 102, 1)
    assert (stats.forwarded, stats.downs) == (2, 1)


def test_publisher_reports_a_new_state_of_a_venue_already_down() -> None:
    """Stale, then disconnected, then resyncing: each state reaches the aggregator once."""
    slot = Mailbox[VenueUpdate]()
    stats = FeedStats()
    publisher = ViewPublisher("v", 2, slot, stats)
    protocol = BinanceProtocol("ethbtc")
    publisher.down("resync: gap", "syncing")  # before the first view: nothing to tell
    assert drain(slot) is None
    set_book(protocol, "3", "2", "1")
    assert publisher.publish(protocol, 7, 100)
    drain(slot)
    publisher.down("stale", "stale")
    assert drain(slot) == VenueDown("v", "stale", "stale")
    publisher.down("disconnected: eof", "down")
    assert drain(slot) == VenueDown("v", "disconnected: eof", "down")
    publisher.down("disconnected: refused", "down")  # same state: no news
    assert drain(slot) is None
    publisher.down("resync: gap", "syncing")
    assert drain(slot) == VenueDown("v", "resync: gap", "syncing")
    assert stats.downs == 3


def test_pick_prefers_the_error_that_explains_the_end() -> None:
    transport = TransportError("socket closed")
    rejected = SubscriptionError("binance", "rejected")
    group = ExceptionGroup("g", [transport, ExceptionGroup("h", [rejected])])
    assert _pick(group) is rejected
    asked = ReconnectRequested("bitstamp", "asked")
    assert _pick(ExceptionGroup("g", [transport, asked])) is asked
    assert _pick(ExceptionGroup("g", [transport])) is transport
    # Anything else is not a connection failure: it must propagate.
    assert _pick(ExceptionGroup("g", [transport, ConfigError("bad url")])) is None
    assert _pick(ExceptionGroup("g", [ValueError("bug")])) is None


@pytest.mark.parametrize(
    ("frame", "shown"),
    [("abc", "abc"), ("x" * 300, "x" * 200 + "..."), (b"\x00\x01", "b'\\x00\\x01'")],
)
def test_excerpt_truncates(frame: str | bytes, shown: str) -> None:
    assert excerpt(frame) == shown
