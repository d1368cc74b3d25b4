"""The view and book gates: liveness across the bus, without sockets (autojump clock)."""

from __future__ import annotations

import time

import trio
import trio.testing

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.codec import BookMsg, BusMessage, HeartbeatMsg, ViewMsg
from dragonflybot.bus.convert import consolidated, venue_view
from dragonflybot.bus.ingest import BookGate, ViewGate, run_book_ingest, run_view_ingest
from dragonflybot.bus.subscriber import Received
from dragonflybot.core.merge import Consolidated
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.service.summary import SummaryPublisher, encode_summary

from .helpers import down_msg, view_msg

WALL = 1_800_000_000_000_000_000


def received(
    body: object, *, seq: int = 1, from_latest: bool = False, sent_ns: int = WALL
) -> Received:
    subject = "x"
    return Received(BusMessage(subject, 1, seq, sent_ns, body), from_latest, 0)  # type: ignore[arg-type]


def beat(venue: str = "binance", sent_ns: int = WALL) -> Received:
    return received(HeartbeatMsg(venue, 1000), sent_ns=sent_ns)


def levels_of(update: VenueUpdate) -> object:
    assert isinstance(update, VenueView)
    return (update.venue, update.bids, update.asks)


def same_view(update: VenueUpdate, msg: ViewMsg) -> bool:
    expected = venue_view(msg)
    return levels_of(update) == (expected.venue, expected.bids, expected.asks)


def test_view_gate_passes_live_views_and_downs_stale_ones() -> None:
    gate = ViewGate("BTC-USDT", stale_after=3.0)
    view = view_msg()
    assert gate.on_received(received(view), 0.0, WALL) == []  # the bus is not up yet
    [update] = gate.on_bus(True, 0.0)
    assert same_view(update, view)
    assert gate.on_received(beat(), 2.0, WALL) == []  # alive, nothing changed
    assert gate.on_tick(4.9) == []  # heartbeat at 2.0 keeps it live until 5.0
    [down] = gate.on_tick(5.0)
    assert isinstance(down, VenueDown) and down.reason.startswith("stale")
    # It speaks again: the held view goes back to the aggregator.
    [back] = gate.on_received(beat(), 6.0, WALL)
    assert same_view(back, view)
    # The bus goes down: out at once, back when it returns (and the feed still speaks).
    [down] = gate.on_bus(False, 6.5)
    assert down == VenueDown("binance", "bus down")
    assert gate.on_bus(True, 6.6) != []


def test_view_gate_down_notices_and_other_instruments() -> None:
    gate = ViewGate("BTC-USDT", stale_after=3.0)
    gate.on_bus(True, 0.0)
    assert gate.on_received(received(view_msg(instrument="ETH-BTC")), 0.0, WALL) == []
    assert gate.on_received(received(down_msg()), 0.0, WALL) == []  # never live: nothing to undo
    gate.on_received(received(view_msg()), 0.1, WALL)
    [down] = gate.on_received(received(down_msg(), seq=2), 0.2, WALL)
    assert down == VenueDown("binance", "disconnected")


def test_an_old_latest_value_is_not_a_sign_of_life() -> None:
    gate = ViewGate("BTC-USDT", stale_after=3.0)
    gate.on_bus(True, 100.0)
    old = received(view_msg(), from_latest=True, sent_ns=WALL - 60 * 10**9)
    assert gate.on_received(old, 100.0, WALL) == []  # its feed wrote it a minute ago
    fresh = received(view_msg(), from_latest=True, sent_ns=WALL - 10**9)
    [update] = gate.on_received(fresh, 100.0, WALL)
    assert same_view(update, view_msg())
    [down] = gate.on_tick(102.0)  # sent at 99.0 on our clock: stale from 102.0
    assert isinstance(down, VenueDown)


def book(seq: int = 1) -> BookMsg:
    return BookMsg(
        "BTC-USDT", seq, ("a",), (("a", 1, 0, 1, 0),), (("a", 2, 0, 1, 0),), (1, 0), None, WALL
    )


def test_book_gate_serves_only_live_books() -> None:
    gate = BookGate("BTC-USDT", stale_after=3.0)
    empty = gate.on_bus(False, 0.0)
    assert empty is not None and not empty.serving and empty.seq == 1
    assert gate.on_received(received(book()), 0.0, WALL) is None  # bus not up: still empty
    state = gate.on_bus(True, 0.1)
    assert state is not None and state.serving and state.seq == 2
    assert [lv.venue for lv in state.book.bids] == ["a"]
    assert gate.on_received(received(book(2), seq=2), 1.0, WALL).seq == 3  # type: ignore[union-attr]
    assert gate.on_tick(3.9) is None
    stale = gate.on_tick(4.0)  # the aggregator fell silent
    assert stale is not None and not stale.serving and stale.book.bids == ()
    assert gate.on_tick(5.0) is None  # the empty state once
    assert gate.on_received(received(HeartbeatMsg("a", 1)), 5.0, WALL) is None


async def test_view_ingest_task_applies_the_rules_in_time(autojump_clock: trio.abc.Clock) -> None:
    bus_status: Fanout[bool] = Fanout()
    bus_status.publish(True)
    deliveries_send, deliveries = trio.open_memory_channel[Received](8)
    updates_send, updates = trio.open_memory_channel[VenueUpdate](8)
    gate = ViewGate("BTC-USDT", stale_after=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_view_ingest, gate, deliveries, bus_status, updates_send)
        start = trio.current_time()
        await deliveries_send.send(received(view_msg(), sent_ns=time.time_ns()))
        assert isinstance(await updates.receive(), VenueView)
        for _ in range(3):  # heartbeats every second keep it live
            await trio.sleep(1)
            await deliveries_send.send(beat(sent_ns=time.time_ns()))
        down = await updates.receive()
        assert isinstance(down, VenueDown) and down.reason.startswith("stale")
        assert (
            trio.current_time() - start > 5.9
        )  # 3 s after the last heartbeat (its wall age aside)
        await deliveries_send.send(beat(sent_ns=time.time_ns()))
        assert isinstance(await updates.receive(), VenueView)
        bus_status.publish(False)
        assert await updates.receive() == VenueDown("binance", "bus down")
        await deliveries_send.aclose()
        async for _ in updates:  # closed when the deliveries end
            pass
    assert gate.bus_up is False


async def test_book_ingest_task_publishes_empty_state_when_the_bus_drops(
    autojump_clock: trio.abc.Clock,
) -> None:
    bus_status: Fanout[bool] = Fanout()
    bus_status.publish(True)
    deliveries_send, deliveries = trio.open_memory_channel[Received](8)
    states: Fanout[BookState] = Fanout()
    gate = BookGate("BTC-USDT", stale_after=3.0)
    with states.subscribe() as reader:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_book_ingest, gate, deliveries, bus_status, states)
            assert not (await reader.receive()).serving
            await deliveries_send.send(received(book(), sent_ns=time.time_ns()))
            assert (await reader.receive()).serving
            bus_status.publish(False)
            assert not (await reader.receive()).serving
            bus_status.publish(True)
            assert (await reader.receive()).serving  # the held book is still fresh
            await trio.sleep(5)
            assert not (await reader.receive()).serving  # and then the aggregator is silent
            nursery.cancel_scope.cancel()


def test_a_backlog_of_old_stream_messages_is_not_live() -> None:
    """A consumer that fell behind gets old messages off the stream: judged by their age."""
    gate = ViewGate("BTC-USDT", stale_after=3.0)
    gate.on_bus(True, 50.0)
    late = received(view_msg(), sent_ns=WALL - 5 * 10**9)  # written 5 s ago
    assert gate.on_received(late, 50.0, WALL) == []
    ahead = received(view_msg(), seq=2, sent_ns=WALL + 10**9)  # its clock runs ahead: "now"
    [update] = gate.on_received(ahead, 50.0, WALL)
    assert isinstance(update, VenueView)
    assert gate.on_tick(52.9) == [] and gate.on_tick(53.0) != []


async def test_book_ingest_drives_the_grpc_services_publisher(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The gateway's end: Summary bytes and the health flag come from the bus's books."""
    bus_status: Fanout[bool] = Fanout()
    bus_status.publish(True)
    deliveries_send, deliveries = trio.open_memory_channel[Received](8)
    summary = SummaryPublisher()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            run_book_ingest, BookGate("BTC-USDT", 3.0), deliveries, bus_status, summary
        )
        assert summary.serving.latest() is False
        await deliveries_send.send(received(book(), sent_ns=time.time_ns()))
        await trio.testing.wait_all_tasks_blocked()
        served = summary.books.latest()
        assert served is not None and summary.serving.latest() is True
        assert served.summary == encode_summary(consolidated(book()))
        bus_status.publish(False)
        await trio.testing.wait_all_tasks_blocked()
        assert summary.serving.latest() is False
        assert summary.books.latest().summary == encode_summary(Consolidated.empty())  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
    assert summary.books.closed  # closed on return, as the aggregator closes it
