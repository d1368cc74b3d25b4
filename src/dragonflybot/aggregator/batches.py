"""Batched draining of the feeds' channel, shared by the BBO and liquidity aggregators.

Under load the feeds queue updates faster than one merge per update could keep up
with; taking everything already queued after each wait and applying it as one batch
means one merge per wake-up, however many updates arrived meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from dragonflybot.core.view import VenueUpdate


async def apply_in_batches(
    receive: trio.MemoryReceiveChannel[VenueUpdate],
    apply_batch: Callable[[list[VenueUpdate]], object],
) -> None:
    """Wait for an update, take every one already queued, ``apply_batch`` them; until
    every sender has closed ``receive`` (the updates queued before that still applied).

    The batch list is reused: ``apply_batch`` must not keep it.
    """
    batch: list[VenueUpdate] = []
    ended = False
    while not ended:
        try:
            batch.append(await receive.receive())
        except trio.EndOfChannel:
            break
        while True:
            try:
                batch.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                ended = True
                break
        apply_batch(batch)
        batch.clear()
