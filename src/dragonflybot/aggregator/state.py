"""What the aggregator publishes: one consolidated book state, numbered.

The sequence number lets an in-process reader of a conflating fan-out tell how
many states it skipped (``seq - last_seq - 1``); the times let it measure how old
the state is and how long the path from the venue's frame took.
"""

from __future__ import annotations

import attrs

from dragonflybot.core.merge import Consolidated


@attrs.frozen(slots=True)
class BookState:
    """The consolidated top N of one instrument after a batch of venue updates."""

    seq: int
    """1, 2, 3, ... per aggregator: consecutive, so gaps are skipped states."""
    published_ns: int
    """``time.monotonic_ns()`` when the aggregator published it."""
    book: Consolidated
    live: frozenset[str]
    """Venues whose book is valid and merged into ``book``; empty when every venue is down."""
    newest_recv_ns: int | None
    """``recv_ns`` of the newest venue frame merged into ``book`` (``None`` if none)."""

    @property
    def serving(self) -> bool:
        """At least one venue is live (what the health service reports)."""
        return bool(self.live)
