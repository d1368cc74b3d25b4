"""Per-feed counters: plain attributes the feed bumps and anyone may read.

No globals and no metrics library here: a later layer exports these (one
``FeedStats`` per feed, handed in by the caller), and tests read them directly.
"""

from __future__ import annotations

from typing import Literal

import attrs

from dragonflybot.latency import LatencyHistogram
from dragonflybot.venues.base import SyncCounters

FeedState = Literal["connecting", "syncing", "live", "stale", "down"]
"""``connecting``: opening the socket / awaiting the ack; ``syncing``: subscribed, diff book
not synced yet (or resyncing after a gap); ``live``: the book is published; ``stale``: no
frame for ``stale_after``; ``down``: disconnected, waiting before the next attempt."""


@attrs.define
class FeedStats:
    """Everything one feed counts, over its whole life (across reconnects)."""

    venue: str = ""
    state: FeedState = "connecting"
    frames: int = 0
    """WebSocket messages received."""
    parsed: int = 0
    """Frames that decoded as well-formed venue messages (ours or not)."""
    malformed: int = 0
    """Frames skipped as malformed (bad JSON, wrong types, bad numbers)."""
    ignored: int = 0
    """Well-formed frames not for this feed (other streams, heartbeat replies, acks of others)."""
    forwarded: int = 0
    """``VenueView``s handed towards the aggregator (only real top-N changes)."""
    downs: int = 0
    """``VenueDown``s handed towards the aggregator."""
    conflated: int = 0
    """Updates replaced by a newer one before the aggregator took them (it was busy)."""
    gaps: int = 0
    """Sequence gaps detected (each discards the book)."""
    resyncs: int = 0
    """Times the book was discarded and rebuilt while connected (gaps, buffer overflows,
    failed integrity checks such as a crossed book)."""
    resubscribes: int = 0
    """Resubscriptions sent to rebuild a book from the stream's snapshot."""
    reconnects: int = 0
    """Connections lost or closed, each followed by a new attempt."""
    connects: int = 0
    """Subscriptions acknowledged."""
    stale_periods: int = 0
    """Times the venue went silent for longer than ``stale_after``."""
    snapshot_requests: int = 0
    """REST snapshot requests made (depth mode)."""
    snapshot_failures: int = 0
    """REST snapshot requests that failed (network, HTTP status, timeout)."""
    rejections: int = 0
    """Subscriptions the venue refused (an unknown symbol, a bad request)."""
    notices: int = 0
    """Errors the venue reported outside a subscription (``bts:error`` after the ack)."""
    data_at: float | None = None
    """``trio.current_time()`` of the last frame that changed the book: the data age,
    tracked apart from liveness (a quiet pair on a healthy connection stays live)."""
    last_error: str | None = None
    """Why the last connection ended."""
    sync: SyncCounters = attrs.field(factory=SyncCounters)
    receive_to_parsed: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    """Frame receipt to the listener handing on the view it changed (decode, sync, book)."""
    """The venue protocol's own counters (applied, dropped, snapshots, refetches...)."""
