"""The second aggregator: aggregated liquidity over the same venue views.

The BBO aggregator and this one read the same feeds: ``tee_updates`` copies
every ``VenueUpdate`` to both, so no venue is connected twice. This one keeps
the latest view per live venue (the same ``ViewTable``), builds the consolidated
ladder (``core.liquidity``) once per batch of updates, and publishes a numbered
``LiquidityState`` on a conflating ``Fanout`` only when the ladder or the live
set changed, exactly like the BBO aggregator. The state also carries the views
themselves, so a cost-to-trade query is answered from the same market state
the ladder shows, without the aggregator doing anything per query.
"""

from __future__ import annotations

import time

import attrs
import trio

from dragonflybot.aggregator.batches import apply_in_batches
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.table import ViewTable
from dragonflybot.aggregator.tee import tee_updates
from dragonflybot.core.liquidity import Ladder, TradeCost, TradeSide, build_ladder, cost_to_trade
from dragonflybot.core.view import VenueUpdate, VenueView


@attrs.frozen(slots=True)
class LiquidityState:
    """The ladder of one instrument after a batch of venue updates."""

    seq: int
    published_ns: int
    ladder: Ladder
    views: tuple[VenueView, ...]
    """The live venues' views the ladder was built from (for cost-to-trade queries)."""
    live: frozenset[str]

    def cost_to_trade(self, side: TradeSide, quantity: int) -> TradeCost:
        return cost_to_trade(self.views, side, quantity)


@attrs.define
class LiquidityStats:
    updates: int = 0
    batches: int = 0
    publications: int = 0


class LiquidityAggregator:
    """Views in, ``LiquidityState`` out on ``fanout``; ``apply_batch`` is the I/O-free step."""

    def __init__(self, depth: int, fanout: Fanout[LiquidityState]) -> None:
        self._table = ViewTable(depth)
        self._depth = depth
        self.fanout = fanout
        self.stats = LiquidityStats()
        self._seq = 0
        self._last: LiquidityState | None = None

    @property
    def depth(self) -> int:
        return self._depth

    def publish_current(self) -> LiquidityState | None:
        """Build and publish the ladder if it or the live set changed; the state published."""
        table = self._table
        ladder = build_ladder(table.views(), self._depth)
        live = table.live
        last = self._last
        if last is not None and last.ladder == ladder and last.live == live:
            return None
        self._seq += 1
        state = LiquidityState(self._seq, time.monotonic_ns(), ladder, tuple(table.views()), live)
        self._last = state
        self.fanout.publish(state)
        self.stats.publications += 1
        return state

    def apply_batch(self, updates: list[VenueUpdate]) -> LiquidityState | None:
        self.stats.updates += len(updates)
        self.stats.batches += 1
        changed = False
        for update in updates:
            changed |= self._table.apply(update)
        if not changed:
            return None
        return self.publish_current()

    async def run(
        self,
        receive: trio.MemoryReceiveChannel[VenueUpdate],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Consume ``receive`` in batches (as ``Aggregator.run``); closes the fan-out on return."""
        try:
            async with receive:
                self.publish_current()
                task_status.started()
                await apply_in_batches(receive, self.apply_batch)
        finally:
            self.fanout.close()


FEED_BUFFER = 64
"""Updates queued towards each of the two aggregators (as ``app.FEED_BUFFER``)."""


def split_for_liquidity(
    nursery: trio.Nursery,
    bbo_send: trio.MemorySendChannel[VenueUpdate],
    aggregator: LiquidityAggregator,
    *,
    name: str,
) -> trio.MemorySendChannel[VenueUpdate]:
    """Start ``aggregator`` beside the BBO one: the feeds' channel, tee'd to both.

    Returns the channel the feeds should send on; ``bbo_send`` (the BBO
    aggregator's input) and the liquidity aggregator's input are closed when it
    is, so both aggregators end when the feeds do.
    """
    feeds_send, feeds_receive = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
    liq_send, liq_receive = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
    nursery.start_soon(aggregator.run, liq_receive, name=f"liquidity:{name}")
    nursery.start_soon(tee_updates, feeds_receive, [bbo_send, liq_send], name=f"tee:{name}")
    return feeds_send
