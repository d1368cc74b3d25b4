"""Immutable per-venue top-N views: what a feed listener hands to the aggregator."""

from __future__ import annotations

from typing import Literal

import msgspec

from dragonflybot.core.book import Side


class VenueView(msgspec.Struct, frozen=True):
    """A venue's current top N, valid as of ``recv_ns``.

    Immutable so the aggregator can keep it without copying while the listener
    goes on mutating its own book. A frozen msgspec Struct because a listener builds
    one per top-N change: it is built in C, far cheaper than an attrs class.
    """

    venue: str
    bids: Side
    asks: Side
    event_time_ms: int | None
    """The venue's own event time, where the venue gives one."""
    recv_ns: int
    """Local receive time of the frame that produced this view (``time.monotonic_ns``)."""
    venue_seq: int | None = None
    """The venue's own sequence of the book state shown (``VenueProtocol.venue_seq``:
    its update id, sequence number or, for Bitstamp, microtimestamp), where it gives one.
    Carried to the bus so consumers can line a view up with the venue's own data."""

    def same_levels(self, other: VenueView | None) -> bool:
        """True when ``other`` shows the same levels (the change-forwarder test)."""
        return other is not None and self.bids == other.bids and self.asks == other.asks


DownState = Literal["syncing", "stale", "down"]
"""Why a venue is excluded, for clients: ``syncing`` (rebuilding its book after a gap or
reset), ``stale`` (silent for too long), ``down`` (disconnected)."""


class VenueDown(msgspec.Struct, frozen=True):
    """The venue's book is not valid (disconnected, stale, resyncing): exclude it."""

    venue: str
    reason: str
    state: DownState = "down"


VenueUpdate = VenueView | VenueDown
"""What flows on the feed -> aggregator channel."""
