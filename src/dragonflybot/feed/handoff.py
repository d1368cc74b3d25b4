"""A latest-value handoff between a feed and the aggregator's channel.

The aggregator's channel is shared by every feed and may be full. A feed must
never stall its socket reader on it: frames would pile up in the kernel and the
book would fall behind the venue. Dropping updates instead is safe because each
update (a ``VenueView`` or ``VenueDown``) states the venue's whole current state,
so only the newest one matters: the listener ``put``s into this slot without
waiting, a small forwarder task moves the newest value into the channel, and
whatever the aggregator had no time for is replaced, not queued.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class LatestValue(Generic[T]):
    """A one-item mailbox whose ``put`` never waits and overwrites an untaken value."""

    __slots__ = ("_has", "_lot", "_value")

    def __init__(self) -> None:
        self._value: T | None = None
        self._has = False
        self._lot = trio.lowlevel.ParkingLot()

    def put(self, value: T) -> bool:
        """Store ``value``; True when it replaced one nobody had taken yet."""
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
    """Move the newest value of ``slot`` into ``send``, forever (until cancelled)."""
    while True:
        await send.send(await slot.get())
