"""The wire form of a consolidated book: built and serialized once per state.

Every client of one aggregator receives the same bytes, so the protobuf is
encoded once when the state is published, never per stream: with many clients
the encoding cost stays that of one. Fixed-point values become doubles here, at
the edge, and nowhere earlier.

Empty side: the list is empty and ``spread`` is ``0.0`` (see ``core.merge``);
no sentinel price is ever sent.
"""

from __future__ import annotations

from typing import Any

import attrs

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.core.fixed import to_float
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.service.messages import Level, Summary


def to_summary(book: Consolidated) -> Any:
    """The ``orderbook.Summary`` message for ``book``."""
    return Summary(
        spread=to_float(book.spread) if book.spread is not None else 0.0,
        bids=[_level(lv) for lv in book.bids],
        asks=[_level(lv) for lv in book.asks],
    )


def _level(level: MergedLevel) -> Any:
    return Level(exchange=level.venue, price=to_float(level.price), amount=to_float(level.amount))


def encode_summary(book: Consolidated) -> bytes:
    return bytes(to_summary(book).SerializeToString())


class PreEncoded:
    """A message already serialized: purerpc sends ``SerializeToString()``, which is free here."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


@attrs.frozen(slots=True)
class EncodedBook:
    """A published state together with its one encoding."""

    state: BookState
    summary: bytes


class SummaryPublisher:
    """The aggregator's publisher for the gRPC service: encode once, then fan out.

    Also keeps the serving status (at least one venue live) in its own fan-out,
    published only when it flips, for the health service.
    """

    def __init__(self) -> None:
        self.books: Fanout[EncodedBook] = Fanout()
        self.serving: Fanout[bool] = Fanout()

    def publish(self, state: BookState, /) -> None:
        self.books.publish(EncodedBook(state, encode_summary(state.book)))
        if self.serving.latest() is not state.serving:
            self.serving.publish(state.serving)

    def close(self) -> None:
        self.books.close()
        self.serving.close()
