"""Copy one stream of venue updates to several aggregators.

Two aggregators over the same feeds (say depth 5 for one client group and 20 for
another) need every update each; this is a plain forwarding task, with the
channels' own backpressure, that closes every output when its input ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from dragonflybot.core.view import VenueUpdate


async def tee_updates(
    receive: trio.MemoryReceiveChannel[VenueUpdate],
    sends: Sequence[trio.MemorySendChannel[VenueUpdate]],
) -> None:
    """Forward every update from ``receive`` to every channel in ``sends``."""
    async with receive:
        try:
            async for update in receive:
                for send in sends:
                    await send.send(update)
        finally:
            for send in sends:
                send.close()
