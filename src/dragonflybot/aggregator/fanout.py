"""Broadcast of the newest value to many readers, each at its own pace (conflation).

A market-data consumer wants the current state, not the history: a reader that
falls behind should skip intermediate values, never queue them. So each
subscriber owns one latest-value ``Mailbox`` (``dragonflybot.mailbox``, the same
mailbox the feeds hand their updates through). ``publish`` overwrites every slot in
O(subscribers) without ever waiting, so a slow reader can neither slow the
publisher nor the other readers, and a reader costs O(1) memory however far
behind it is. ``channel.clone()`` would be wrong here: clones share one queue,
so each item goes to one reader only, and a full queue blocks the sender.

A new subscriber starts with the latest published value, so a client that
connects to a quiet market still sees the current book at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import trio

from dragonflybot.mailbox import Mailbox

T = TypeVar("T")


class Subscription(Generic[T]):
    """A reader of a ``Fanout``: ``receive()`` returns the newest value not yet read.

    Iterate it (``async for value in sub``) or call ``receive``; both end with
    ``trio.EndOfChannel`` / end of iteration once the fan-out is closed and the
    last value has been read. Use it as a context manager (``Fanout.subscribe``)
    so leaving the block frees the slot at once.
    """

    __slots__ = ("_fanout", "_slot")

    def __init__(self, fanout: Fanout[T], slot: Mailbox[T]) -> None:
        self._fanout = fanout
        self._slot = slot

    @property
    def skipped(self) -> int:
        """How many values were overwritten before this reader got to them."""
        return self._slot.overwritten

    @property
    def pending(self) -> bool:
        """True when a value is waiting (``receive`` would not block)."""
        return self._slot.has_value

    def receive_nowait(self) -> T:
        """The waiting value; ``trio.WouldBlock`` if none, ``trio.EndOfChannel`` if closed."""
        return self._slot.take_nowait()

    async def receive(self) -> T:
        """Wait for a value newer than the last one read, and return the newest.

        Always a real checkpoint, even when a value is already waiting: a gRPC
        stream loops on this, and a loop that never yields would starve every
        other task (purerpc's writes do not yield on their own).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        slot = self._slot
        if not slot.has_value and not slot.closed:
            await slot.lot.park()
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        # Read after waking: if more values came meanwhile, this is the newest.
        return self.receive_nowait()

    def close(self) -> None:
        """Stop receiving and free the slot (idempotent)."""
        self._fanout._discard(self._slot)
        self._slot.close()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Fanout(Generic[T]):
    """One writer, many conflating readers. Not thread-safe; one trio run only."""

    __slots__ = ("_closed", "_has_latest", "_latest", "_published", "_slots")

    def __init__(self) -> None:
        self._slots: set[Mailbox[T]] = set()
        self._latest: T | None = None
        self._has_latest = False
        self._closed = False
        self._published = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._slots)

    @property
    def published(self) -> int:
        """Number of values published so far."""
        return self._published

    @property
    def closed(self) -> bool:
        return self._closed

    def latest(self) -> T | None:
        """The last published value, or ``None`` before the first."""
        return self._latest

    def publish(self, value: T) -> None:
        """Hand ``value`` to every subscriber, replacing any value they have not read."""
        if self._closed:
            raise trio.ClosedResourceError("publish on a closed fan-out")
        self._latest = value
        self._has_latest = True
        self._published += 1
        for slot in self._slots:
            slot.put(value)

    def close(self) -> None:
        """No more values: readers get what is waiting, then the end (idempotent)."""
        self._closed = True
        for slot in self._slots:
            slot.close()
        self._slots.clear()

    def open_subscription(self) -> Subscription[T]:
        """A new reader, primed with the latest value; call ``close()`` when done."""
        slot: Mailbox[T] = Mailbox()
        if self._has_latest:
            slot.put(self._latest)  # type: ignore[arg-type]  # _has_latest guarantees a T
        if self._closed:
            slot.close()
        else:
            self._slots.add(slot)
        return Subscription(self, slot)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription[T]]:
        """``with fanout.subscribe() as sub:`` — the slot is freed when the block ends."""
        sub = self.open_subscription()
        try:
            yield sub
        finally:
            sub.close()

    def _discard(self, slot: Mailbox[T]) -> None:
        self._slots.discard(slot)
