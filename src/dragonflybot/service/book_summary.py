"""``orderbook.OrderbookAggregator/BookSummary``: the consolidated book as a stream.

Each call owns one fan-out subscription for as long as it lasts: it starts with
the current book and then always gets the newest one, skipping states it was
too slow for. The generator awaits its slot before every message, and the
connection waits for each message to leave before asking for the next (see
``service.connection``), so a stream never runs ahead of its client and never
starves the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from purerpc import RpcFailedError, Status, StatusCode

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorServicer
from dragonflybot.service.summary import EncodedBook, PreEncoded

SERVICE_NAME = "orderbook.OrderbookAggregator"


class BookSummaryService(OrderbookAggregatorServicer):
    """Streams the Summaries published on ``books`` (already encoded, sent as is)."""

    def __init__(self, books: Fanout[EncodedBook]) -> None:
        self._books = books

    async def BookSummary(self, input_message: Any) -> AsyncIterator[PreEncoded]:  # type: ignore[override]
        with self._books.subscribe() as subscription:
            async for book in subscription:
                yield PreEncoded(book.summary)
        raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "the book is no longer published"))
