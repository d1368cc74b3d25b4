"""What the metrics read of one running instrument: a structural type, not the app's class.

``dragonflybot.app.InstrumentRuntime`` satisfies it; the metrics package never imports
the app (the app builds its registry, so the dependency runs one way only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dragonflybot.aggregator import AggregatorStats, BookState
from dragonflybot.feed.stats import FeedStats
from dragonflybot.service.book_summary import StreamStats
from dragonflybot.service.stats import ServerStats


class ServerCounts(Protocol):
    """One gRPC server's counters: one per address, shared by the instruments served there."""

    @property
    def address(self) -> str: ...

    @property
    def stats(self) -> ServerStats: ...


class InstrumentSource(Protocol):
    """One instrument's counters, read at scrape time."""

    @property
    def name(self) -> str: ...

    @property
    def feed_stats(self) -> Mapping[str, FeedStats]: ...

    @property
    def aggregator_stats(self) -> AggregatorStats: ...

    @property
    def stream_stats(self) -> StreamStats: ...

    @property
    def v1_stats(self) -> StreamStats: ...

    @property
    def connection_count(self) -> int: ...

    def latest(self) -> BookState | None: ...
