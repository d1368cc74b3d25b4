"""``orderbook.OrderbookAggregator/BookSummary``: the consolidated book as a stream.

Each call owns one fan-out subscription for as long as it lasts: it starts with
the current book and then always gets the newest one, skipping states it was
too slow for. The generator awaits its slot before every message, and the
connection waits for each message to leave before asking for the next (see
``service.connection``), so a stream never runs ahead of its client and never
starves the others.

A stream may also be capped at a number of Summaries per second (``max_rate``): after
each send it waits for its phase's next tick of the service's ``Ticker`` while its
slot conflates, so it sends at most once per interval.
Each send costs the service a socket write and some framing per client (measured
in docs/performance.md, "The send path"), so enough uncapped clients of a busy book
would need more than the one core; the cap bounds the fan-out's share of the core
whatever the number of clients, leaving the feeds and the aggregator their pace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import attrs

from dragonflybot.aggregator.fanout import Fanout, Subscription
from dragonflybot.errors import ConfigError
from dragonflybot.latency import LatencyHistogram
from dragonflybot.service.grpcwire import Framed
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorServicer
from dragonflybot.service.purerpc_adapter import RpcFailedError, Status, StatusCode
from dragonflybot.service.summary import EncodedBook
from dragonflybot.service.ticker import Ticker

SERVICE_NAME = "orderbook.OrderbookAggregator"


@attrs.define
class StreamStats:
    """What the book streams of one service did (plain numbers: the metrics read them)."""

    open: int = 0
    """``BookSummary`` streams running now."""
    opened: int = 0
    """``BookSummary`` streams started, over the service's life."""
    sent: int = 0
    """Summaries handed to streams."""
    conflated_ended: int = 0
    """Summaries skipped by streams that have ended."""
    live: set[Subscription[EncodedBook]] = attrs.field(factory=set)
    """The fan-out subscriptions of the streams running now."""
    receive_to_sent: LatencyHistogram = attrs.field(factory=LatencyHistogram)
    """From the receipt of the newest venue frame in a Summary to its hand-off to a stream.

    The first Summary of each stream is not observed: it is the book as it was when
    the client connected, which may be old in a quiet market without anything being slow.
    """

    @property
    def conflated(self) -> int:
        """Summaries a stream skipped because a newer one replaced them before it could send.

        Counted when the fan-out overwrites a stream's slot (read from the live
        subscriptions here), so a stuck stream's conflation shows while it is stuck,
        not only once it sends again.
        """
        return self.conflated_ended + sum(sub.skipped for sub in self.live)


class BookSummaryService(OrderbookAggregatorServicer):
    """Streams the Summaries published on ``books`` (already encoded, sent as is)."""

    def __init__(
        self,
        books: Fanout[EncodedBook],
        *,
        stats: StreamStats | None = None,
        max_rate: float = 0.0,
    ) -> None:
        """``max_rate``: Summaries per second per stream at most; 0 means no cap."""
        if max_rate < 0:
            raise ConfigError(f"max_rate must be >= 0, got {max_rate}")
        self._books = books
        self.stats = stats if stats is not None else StreamStats()
        self._ticker = Ticker(max_rate) if max_rate else None

    async def BookSummary(self, input_message: Any) -> AsyncIterator[Framed]:  # type: ignore[override]
        stats = self.stats
        latency = stats.receive_to_sent
        clock = time.monotonic_ns
        ticker = self._ticker
        phase = ticker.phase() if ticker is not None else 0
        stats.open += 1
        stats.opened += 1
        try:
            with self._books.subscribe() as subscription:
                stats.live.add(subscription)
                try:
                    first = True
                    async for book in subscription:
                        recv_ns = book.state.newest_recv_ns
                        if recv_ns is not None and not first:
                            latency.observe_ns(clock() - recv_ns)
                        first = False
                        stats.sent += 1
                        yield Framed(book.framed)
                        if ticker is not None:
                            await ticker.wait(phase)
                finally:
                    stats.live.discard(subscription)
                    stats.conflated_ended += subscription.skipped
        finally:
            stats.open -= 1
        raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "the book is no longer published"))
