"""``Mailbox``: a one-item, latest-value mailbox whose ``put`` never waits.

Both handoffs of the pipeline that must never block their writer use it:

* feed -> aggregator (``feed.handoff``): the listener ``put``s every venue update;
  only the newest matters (each states the venue's whole state), and a forwarder
  moves it into the aggregator's shared channel;
* aggregator -> each client stream (``aggregator.fanout``): one mailbox per reader,
  so a slow reader skips books instead of queueing them.

A value not taken before the next ``put`` is overwritten and counted
(``overwritten``). Optionally a *direct* channel (``feed.handoff.forward``) takes a
value straight away while nothing is held here, saving a scheduler round per value.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Mailbox(Generic[T]):
    """At most one unread value; ``put`` overwrites, ``get`` waits for one."""

    __slots__ = ("closed", "direct", "has_value", "lot", "overwritten", "value")

    def __init__(self) -> None:
        self.value: T | None = None
        self.has_value = False
        self.closed = False
        self.overwritten = 0
        """Values replaced before anyone took them."""
        self.lot = trio.lowlevel.ParkingLot()
        self.direct: trio.MemorySendChannel[T] | None = None
        """A channel that takes values straight from ``put`` while none is held here."""

    def put(self, value: T) -> bool:
        """Store ``value``; True when it replaced one nobody had taken yet.

        With a direct channel and nothing held here, the value goes straight into the
        channel if it takes it without waiting. Order is kept: a value held here, or
        one a blocked forwarder is still sending, means the channel is full or about
        to receive that value first, so a newer one waits here behind it.
        """
        direct = self.direct
        if direct is not None and not self.has_value:
            try:
                direct.send_nowait(value)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # the forwarder sends it (and reports a closed channel)
            else:
                return False
        replaced = self.has_value
        if replaced:
            self.overwritten += 1
        self.value = value
        self.has_value = True
        if self.lot:  # unpark_all costs a microsecond even with nobody parked
            self.lot.unpark_all()
        return replaced

    def close(self) -> None:
        """No more values: a reader gets what is held, then ``trio.EndOfChannel``."""
        self.closed = True
        self.lot.unpark_all()

    def take_nowait(self) -> T:
        """The held value; ``trio.WouldBlock`` if none, ``trio.EndOfChannel`` if closed."""
        if self.has_value:
            value = self.value
            self.value = None
            self.has_value = False
            return value  # type: ignore[return-value]  # has_value guarantees a T
        if self.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def get(self) -> T:
        """Wait for a value and take it (``trio.EndOfChannel`` once closed and empty)."""
        while not self.has_value and not self.closed:
            await self.lot.park()
        return self.take_nowait()
