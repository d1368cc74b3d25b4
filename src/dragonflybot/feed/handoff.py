"""A latest-value handoff between a feed and the aggregator's channel.

The aggregator's channel is shared by every feed and may be full. A feed must
never stall its socket reader on it: frames would pile up in the kernel and the
book would fall behind the venue. Dropping updates instead is safe because each
update (a ``VenueView`` or ``VenueDown``) states the venue's whole current state,
so only the newest one matters: the listener ``put``s into a ``Mailbox``
(``dragonflybot.mailbox``) without waiting, a small forwarder task moves the newest
value into the channel, and whatever the aggregator had no time for is replaced, not queued.

While the channel has room (the usual case: the aggregator drains it on every
wake-up) ``put`` sends straight into it and the forwarder is not involved: a
hop through the forwarder costs a whole scheduler round, behind every other
task's step (docs/performance.md has the measured cost).
"""

from __future__ import annotations

from typing import TypeVar

import trio

from dragonflybot.mailbox import Mailbox

T = TypeVar("T")


async def forward(slot: Mailbox[T], send: trio.MemorySendChannel[T]) -> None:
    """Move the newest value of ``slot`` into ``send``, forever (until cancelled).

    While it runs, ``slot.put`` may send into ``send`` itself (``Mailbox.direct``).
    """
    if slot.direct is not None:
        raise RuntimeError("a Mailbox has one forwarder at a time")
    slot.direct = send
    try:
        while True:
            # No checkpoint between taking the value and trying to send it: a blocked
            # send parks with the value, so the channel is full while it waits.
            await send.send(await slot.get())
    finally:
        slot.direct = None
