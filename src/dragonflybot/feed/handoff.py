"""A latest-value handoff between a feed and the aggregator's channel.

The aggregator's channel is shared by every feed and may be full. A feed must
never stall its socket reader on it: frames would pile up in the kernel and the
book would fall behind the venue. Dropping updates instead is safe because each
update (a ``VenueView`` or ``VenueDown``) states the venue's whole current state,
so only the newest one matters: the listener ``put``s into this slot without
waiting, a small forwarder task moves the newest value into the channel, and
whatever the aggregator had no time for is replaced, not queued.

While the channel has room (the usual case: the aggregator drains it on every
wake-up) ``put`` sends straight into it and the forwarder is not involved: a
hop through the forwarder costs a whole scheduler round, behind every other
task's step, which the latency benchmark measured at 150-290 µs per hop.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class LatestValue(Generic[T]):
    """A one-item mailbox whose ``put`` never waits and overwrites an untaken value."""

    __slots__ = ("_direct", "_has", "_lot", "_value")

    def __init__(self) -> None:
        self._value: T | None = None
        self._has = False
        self._lot = trio.lowlevel.ParkingLot()
        self._direct: trio.MemorySendChannel[T] | None = None

    def put(self, value: T) -> bool:
        """Store ``value``; True when it replaced one nobody had taken yet.

        With a forwarder running and nothing held here, the value goes straight into the
        forwarder's channel if that takes it without waiting. Order is kept: a value held
        here, or one a blocked forwarder is still sending, means the channel is full or
        about to receive that value first, so a newer one waits here behind it.
        """
        if not self._has and self._direct is not None:
            try:
                self._direct.send_nowait(value)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # the forwarder sends it (and reports a closed channel)
            else:
                return False
        replaced = self._has
        self._value = value
        self._has = True
        if self._lot:  # unpark_all costs a microsecond even with nobody parked
            self._lot.unpark_all()
        return replaced

    async def get(self) -> T:
        """Wait for a value and take it."""
        while not self._has:
            await self._lot.park()
        value = self._value
        self._value = None
        self._has = False
        return value  # type: ignore[return-value]


async def forward(slot: LatestValue[T], send: trio.MemorySendChannel[T]) -> None:
    """Move the newest value of ``slot`` into ``send``, forever (until cancelled).

    While it runs, ``slot.put`` may send into ``send`` itself (see ``LatestValue.put``).
    """
    if slot._direct is not None:
        raise RuntimeError("a LatestValue has one forwarder at a time")
    slot._direct = send
    try:
        while True:
            # No checkpoint between taking the value and trying to send it: a blocked
            # send parks with the value, so the channel is full while it waits.
            await send.send(await slot.get())
    finally:
        slot._direct = None
