"""What the aggregator publishes: one consolidated book state, numbered.

The sequence number lets an in-process reader of a conflating fan-out tell how
many states it skipped (``seq - last_seq - 1``); the times let it measure how old
the state is and how long the path from the venue's frame took.
"""

from __future__ import annotations

from typing import Literal

import attrs

from dragonflybot.core.merge import Consolidated
from dragonflybot.core.view import VenueView

VenueState = Literal["live", "syncing", "stale", "down"]
"""``live``: merged into the book; the others as ``core.view.DownState``."""


@attrs.frozen(slots=True)
class VenueHealth:
    """One venue as the aggregator last heard of it (only venues it heard of at all)."""

    venue: str
    state: VenueState
    last_update_ns: int | None
    """``recv_ns`` (``time.monotonic_ns``) of the venue's last view that reached the
    aggregator; the age clients see is measured from it when they are sent a message."""
    reason: str | None = None
    """Why the venue is excluded; ``None`` while live."""


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
    excluded: tuple[VenueHealth, ...] = ()
    """The venues heard of but not live, with why. A change of state alone (stale ->
    down) is published as a new state with the same book."""
    views: tuple[VenueView, ...] = ()
    """The live venues' views the book was merged from (immutable, shared; in no
    particular order), so a reader can merge a subset of venues itself."""

    @property
    def venues(self) -> tuple[VenueHealth, ...]:
        """Every venue heard of, by name: live ones from their views, then as excluded.

        Built on demand by readers that want it (the v1 service), not by the
        aggregator, whose publication path stays as cheap as before.
        """
        everyone = {h.venue: h for h in self.excluded}
        for view in self.views:
            everyone[view.venue] = VenueHealth(view.venue, "live", view.recv_ns)
        return tuple(everyone[name] for name in sorted(everyone))

    @property
    def serving(self) -> bool:
        """At least one venue is live (what the health service reports)."""
        return bool(self.live)
