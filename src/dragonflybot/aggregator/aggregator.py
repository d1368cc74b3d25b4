"""The aggregator task: venue updates in, numbered consolidated states out.

It catches up instead of falling behind: after each wake-up it drains every
update already waiting (``receive_nowait``) and merges once for the whole
batch, so under load it does one merge per batch rather than one per update
and always publishes the latest market state. It publishes only when the
consolidated book or the set of live venues really changed.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs
import trio

from dragonflybot.aggregator.batches import apply_in_batches
from dragonflybot.aggregator.state import BookState
from dragonflybot.aggregator.table import ViewTable
from dragonflybot.core.merge import Consolidated
from dragonflybot.core.view import VenueUpdate
from dragonflybot.latency import LatencyHistogram


class Publisher(Protocol):
    """Where states go: a ``Fanout[BookState]``, or the service's encoding publisher."""

    def publish(self, state: BookState, /) -> None: ...

    def close(self) -> None: ...


@attrs.define
class AggregatorStats:
    """Counters for logs, metrics and tests (plain ints: read them any time)."""

    updates: int = 0
    batches: int = 0
    largest_batch: int = 0
    merges: int = 0
    publications: int = 0
    receive_to_merged: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    """From the receipt of the newest venue frame in a published state to its publication."""


class Aggregator:
    """One consolidated view: a ``ViewTable`` plus numbering and change detection.

    ``run`` is the trio task; ``apply_batch`` is the same step without I/O, so a
    caller holding updates in hand (a test, a replay) gets identical results.
    """

    def __init__(
        self, depth: int, publisher: Publisher, *, stats: AggregatorStats | None = None
    ) -> None:
        self._table = ViewTable(depth)
        self._publisher = publisher
        self.stats = stats if stats is not None else AggregatorStats()
        self._seq = 0
        self._book: Consolidated | None = None
        self._live: frozenset[str] | None = None
        self._down_changes = 0

    @property
    def depth(self) -> int:
        return self._table.depth

    def publish_current(self) -> BookState | None:
        """Merge and publish if the book, the live set or a venue's state changed; the state
        published (a venue's last-update time alone is no change: ages are computed by
        readers from it)."""
        table = self._table
        if table.dirty or self._book is None:
            book = table.merge()
            self.stats.merges += 1
        else:
            book = self._book
        live = table.live
        down_changes = table.down_changes
        if book == self._book and live == self._live and down_changes == self._down_changes:
            return None
        self._book = book
        self._live = live
        self._down_changes = down_changes
        self._seq += 1
        state = BookState(
            self._seq,
            time.monotonic_ns(),
            book,
            live,
            table.newest_recv_ns(),
            table.excluded(),
            table.live_views(),
        )
        self._publisher.publish(state)
        self.stats.publications += 1
        if state.newest_recv_ns is not None:
            self.stats.receive_to_merged.observe_ns(state.published_ns - state.newest_recv_ns)
        return state

    def apply_batch(self, updates: list[VenueUpdate]) -> BookState | None:
        """Apply every update, then merge once if anything changed."""
        stats = self.stats
        stats.updates += len(updates)
        stats.batches += 1
        stats.largest_batch = max(stats.largest_batch, len(updates))
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
        """Consume ``receive`` until every sender has closed it; closes the publisher on return.

        Publishes the empty state first, so a client connecting before any venue is
        live gets an (empty) book rather than silence.
        """
        try:
            async with receive:
                self.publish_current()
                task_status.started()
                await apply_in_batches(receive, self.apply_batch)
        finally:
            self._publisher.close()
