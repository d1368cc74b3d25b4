from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.aggregator import Fanout


async def test_a_new_subscriber_starts_with_the_latest_value() -> None:
    fanout: Fanout[int] = Fanout()
    fanout.publish(1)
    fanout.publish(2)
    with fanout.subscribe() as sub:
        assert await sub.receive() == 2
        assert not sub.pending


async def test_a_slow_subscriber_skips_to_the_newest_value() -> None:
    fanout: Fanout[int] = Fanout()
    with fanout.subscribe() as sub:
        for i in range(100):
            fanout.publish(i)
        assert await sub.receive() == 99
        assert sub.skipped == 99
        fanout.publish(100)
        assert await sub.receive() == 100


async def test_slow_subscriber_does_not_slow_the_fast_one_nor_the_publisher(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fanout: Fanout[int] = Fanout()
    fast_got: list[int] = []
    slow_got: list[int] = []

    async def reader(out: list[int], delay: float) -> None:
        with fanout.subscribe() as sub:
            async for value in sub:
                out.append(value)
                await trio.sleep(delay)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader, fast_got, 0)
        nursery.start_soon(reader, slow_got, 1.0)
        await trio.sleep(0.01)
        for i in range(1, 101):
            fanout.publish(i)  # never blocks
            await trio.sleep(0.1)
        fanout.close()
    assert fast_got == list(range(1, 101))
    assert slow_got[-1] == 100
    assert len(slow_got) <= 12
    assert slow_got == sorted(slow_got)


async def test_unsubscribing_frees_the_slot_at_once() -> None:
    fanout: Fanout[object] = Fanout()
    value = type("Big", (), {})()
    ref = weakref.ref(value)
    sub = fanout.open_subscription()
    assert fanout.subscriber_count == 1
    fanout.publish(value)
    fanout.publish(object())
    del value
    sub.close()
    assert fanout.subscriber_count == 0
    gc.collect()
    assert ref() is None
    with fanout.subscribe():
        assert fanout.subscriber_count == 1
    assert fanout.subscriber_count == 0


async def test_cancelled_reader_leaves_no_slot() -> None:
    fanout: Fanout[int] = Fanout()
    with trio.move_on_after(0.01):
        with fanout.subscribe() as sub:
            await sub.receive()
    assert fanout.subscriber_count == 0


async def test_close_delivers_the_pending_value_then_ends() -> None:
    fanout: Fanout[int] = Fanout()
    with fanout.subscribe() as sub:
        fanout.publish(7)
        fanout.close()
        assert await sub.receive() == 7
        with pytest.raises(trio.EndOfChannel):
            await sub.receive()
    with pytest.raises(trio.ClosedResourceError):
        fanout.publish(8)
    # Subscribing after close yields the last value, then the end.
    with fanout.subscribe() as late:
        assert [v async for v in late] == [7]


async def test_receive_is_a_checkpoint_even_with_a_value_waiting() -> None:
    fanout: Fanout[int] = Fanout()
    with fanout.subscribe() as sub:
        fanout.publish(1)
        with trio.CancelScope() as scope:
            scope.cancel()
            await sub.receive()
        assert scope.cancelled_caught
        assert sub.pending  # the value was not consumed by the cancelled call


async def test_receive_nowait() -> None:
    fanout: Fanout[int] = Fanout()
    with fanout.subscribe() as sub:
        with pytest.raises(trio.WouldBlock):
            sub.receive_nowait()
        fanout.publish(3)
        assert sub.receive_nowait() == 3


# Each step publishes the next number (True) or lets the reader catch up (False).
@given(st.lists(st.booleans()))
def test_a_subscriber_always_ends_on_the_last_published_value(ops: list[bool]) -> None:
    async def scenario() -> None:
        fanout: Fanout[int] = Fanout()
        got: list[int] = []
        published = 0

        async def reader(ready: trio.Event) -> None:
            with fanout.subscribe() as sub:
                ready.set()
                async for value in sub:
                    got.append(value)

        ready = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader, ready)
            await ready.wait()
            for publish in ops:
                if publish:
                    published += 1
                    fanout.publish(published)
                else:
                    await trio.testing.wait_all_tasks_blocked()
            fanout.close()
        if published:
            assert got[-1] == published
        # Newest first never goes backwards and never repeats.
        assert got == sorted(set(got))

    trio.run(scenario)


class _CountingLot:
    """A ``ParkingLot`` stand-in counting ``unpark_all`` calls (trio's class is final)."""

    def __init__(self) -> None:
        self.inner = trio.lowlevel.ParkingLot()
        self.unparks = 0

    def __len__(self) -> int:
        return len(self.inner)

    async def park(self) -> None:
        await self.inner.park()

    def unpark_all(self) -> list[trio.lowlevel.Task]:
        self.unparks += 1
        return self.inner.unpark_all()


async def test_publish_wakes_a_parked_reader_and_skips_the_wake_up_otherwise() -> None:
    fanout: Fanout[int] = Fanout()
    with fanout.subscribe() as sub:
        lot = _CountingLot()
        sub._slot.lot = lot  # type: ignore[assignment]
        fanout.publish(1)  # nobody parked: no wake-up to do
        fanout.publish(2)
        assert lot.unparks == 0
        assert await sub.receive() == 2
        got: list[int] = []
        async with trio.open_nursery() as nursery:

            async def read_one() -> None:
                got.append(await sub.receive())

            nursery.start_soon(read_one)
            await trio.testing.wait_all_tasks_blocked()
            assert len(lot) == 1
            fanout.publish(3)  # the parked reader is woken
            assert lot.unparks == 1
        assert got == [3]
