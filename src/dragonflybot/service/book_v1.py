"""``dragonflybot.v1.BookService``: every instrument of the process on one address.

The Keyrock ``BookSummary`` cannot say which instrument it streams, so each
instrument needs its own port there; this service names the instrument in the
request and in every Book, and adds what market-data clients expect: exact
decimal strings beside the doubles, times, a sequence number and each venue's
state and age.

It depends on no application wiring, only on ``InstrumentSource`` values (name,
venues, maximum depth and the fan-out of the instrument's published states), so
the app builds one per instrument from what it already runs for ``BookSummary``.
Streams behave like ``BookSummaryService``'s: one conflating subscription each,
the newest state always, a paced send (see ``service.connection``), and an
optional cap (``max_rate``) from the request, the service or both (the lower).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import attrs
from purerpc import RpcFailedError, Status, StatusCode

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.errors import ConfigError
from dragonflybot.instrument import canonical, resolve_served
from dragonflybot.service.book_summary import StreamStats
from dragonflybot.service.book_v1_encoding import (
    BookV1Encoder,
    Instrument,
    ListInstrumentsResponse,
    VenueStatusUpdate,
    WallClock,
    venue_healths,
    venue_status,
)
from dragonflybot.service.proto.book_v1_grpc import BookServiceServicer
from dragonflybot.service.summary import EncodedBook, PreEncoded
from dragonflybot.service.ticker import Ticker

SERVICE_NAME: Final = "dragonflybot.v1.BookService"
ENDED: Final = Status(StatusCode.UNAVAILABLE, "the book is no longer published")


@attrs.frozen
class InstrumentSource:
    """What the service needs of one instrument (the app has all of it per aggregator)."""

    name: str
    """Canonical ``BASE-QUOTE`` name, as clients will see it (``ETH-BTC``)."""
    venues: tuple[str, ...]
    """The venues configured for it, in the order clients should see them."""
    max_depth: int
    """The aggregator's depth: the most levels per side a client can ask for."""
    books: Fanout[EncodedBook]
    """The aggregator's published states (``SummaryPublisher.books``)."""
    stats: StreamStats | None = None
    """This instrument's StreamBook counters (for per-instrument metrics), if wanted."""


class _Instrument:
    __slots__ = ("encoder", "source")

    def __init__(self, source: InstrumentSource) -> None:
        self.source = source
        self.encoder = BookV1Encoder(source.name, source.venues)


class BookServiceV1(BookServiceServicer):
    """Serves the ``InstrumentSource``s given; client names resolve with
    ``dragonflybot.instrument.resolve_served`` (canonical or compact)."""

    def __init__(
        self,
        instruments: Iterable[InstrumentSource],
        *,
        max_rate: float = 0.0,
        stats: StreamStats | None = None,
    ) -> None:
        """``max_rate``: Books per second per stream at most, whatever a client asks; 0: none.

        ``stats``: the StreamBook streams' counters, all instruments together (the
        same shape as ``BookSummaryService``'s, for the metrics).
        """
        self.stats = stats if stats is not None else StreamStats()
        if not max_rate >= 0 or math.isinf(max_rate):
            raise ConfigError(f"max_rate must be a number >= 0, got {max_rate}")
        self._by_key: dict[str, _Instrument] = {}
        for source in instruments:
            key = canonical(source.name)
            if key != source.name:
                raise ConfigError(f"instrument name {source.name!r} is not canonical: {key!r}")
            if key in self._by_key:
                raise ConfigError(f"instrument {source.name!r} is given twice")
            if source.max_depth < 1:
                raise ConfigError(f"{source.name}: max_depth must be >= 1")
            self._by_key[key] = _Instrument(source)
        self._max_rate = max_rate
        self._ticker = Ticker(max_rate) if max_rate else None

    @property
    def instruments(self) -> tuple[InstrumentSource, ...]:
        return tuple(i.source for i in self._by_key.values())

    def _names(self) -> str:
        return ", ".join(i.source.name for i in self._by_key.values()) or "none"

    def _resolve(self, name: str) -> _Instrument:
        if not name:
            raise RpcFailedError(
                Status(
                    StatusCode.INVALID_ARGUMENT,
                    f"instrument is required; this server has: {self._names()}",
                )
            )
        key = resolve_served(name, self._by_key)
        found = self._by_key.get(key) if key is not None else None
        if found is None:
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise RpcFailedError(
                Status(
                    StatusCode.NOT_FOUND,
                    f"unknown instrument {shown!r}; this server has: {self._names()}"
                    " (as BASE-QUOTE or compact, e.g. ETH-BTC or ethbtc)",
                )
            )
        return found

    def _check(self, instrument: _Instrument, request: Any) -> tuple[int, frozenset[str] | None]:
        """The depth and venue filter ``request`` asks for, or INVALID_ARGUMENT saying why."""
        source = instrument.source
        depth = request.depth or source.max_depth
        if depth > source.max_depth:
            raise RpcFailedError(
                Status(
                    StatusCode.INVALID_ARGUMENT,
                    f"depth {depth} is above {source.name}'s maximum of {source.max_depth}:"
                    f" ask for 1 to {source.max_depth} (0 means {source.max_depth})",
                )
            )
        rate = request.max_rate
        if not rate >= 0 or math.isinf(rate):
            raise RpcFailedError(
                Status(
                    StatusCode.INVALID_ARGUMENT,
                    f"max_rate must be a finite number >= 0 (0: uncapped), got {rate}",
                )
            )
        if not request.venues:
            return depth, None
        unknown = sorted(set(request.venues) - set(source.venues))
        if unknown:
            shown = ", ".join(repr(v[:32]) for v in unknown[:5])
            raise RpcFailedError(
                Status(
                    StatusCode.INVALID_ARGUMENT,
                    f"unknown venue {shown} for {source.name}; its venues are: "
                    + ", ".join(source.venues),
                )
            )
        chosen = frozenset(request.venues)
        # Every venue is no filter: share the unfiltered encoding with the other streams.
        return depth, None if chosen == frozenset(source.venues) else chosen

    def _pace(self, requested: float) -> tuple[Ticker | None, int]:
        """The ticker a stream waits on after each send (None: uncapped) and its phase."""
        ticker = self._ticker
        if requested and (ticker is None or requested < self._max_rate):
            return Ticker(requested, phases=1), 0
        if ticker is None:
            return None, 0
        return ticker, ticker.phase()

    async def StreamBook(self, input_message: Any) -> AsyncIterator[PreEncoded]:  # type: ignore[override]
        instrument = self._resolve(input_message.instrument)
        depth, venues = self._check(instrument, input_message)
        ticker, phase = self._pace(input_message.max_rate)
        encoder = instrument.encoder
        stats = self.stats
        own = instrument.source.stats
        stats.open += 1
        stats.opened += 1
        if own is not None:
            own.open += 1
            own.opened += 1
        try:
            with instrument.source.books.subscribe() as subscription:
                stats.live.add(subscription)
                if own is not None:
                    own.live.add(subscription)
                try:
                    first = True
                    async for book in subscription:
                        clock = WallClock.now()
                        recv_ns = book.state.newest_recv_ns
                        if recv_ns is not None and not first:  # the first is the book as it was
                            stats.receive_to_sent.observe_ns(clock.monotonic_ns - recv_ns)
                            if own is not None:
                                own.receive_to_sent.observe_ns(clock.monotonic_ns - recv_ns)
                        first = False
                        stats.sent += 1
                        if own is not None:
                            own.sent += 1
                        yield PreEncoded(encoder.encode(book.state, depth, venues, clock))
                        if ticker is not None:
                            await ticker.wait(phase)
                finally:
                    stats.live.discard(subscription)
                    stats.conflated_ended += subscription.skipped
                    if own is not None:
                        own.live.discard(subscription)
                        own.conflated_ended += subscription.skipped
        finally:
            stats.open -= 1
            if own is not None:
                own.open -= 1
        raise RpcFailedError(ENDED)

    async def ListInstruments(self, input_message: Any) -> Any:
        return ListInstrumentsResponse(
            instruments=[
                Instrument(name=s.name, venues=list(s.venues), max_depth=s.max_depth)
                for s in self.instruments
            ]
        )

    async def StreamVenueStatus(self, input_message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        """First every venue's current state, then each change (state or reason) as published.

        The fan-out conflates: a venue that flips twice before the stream reads the
        state shows only where it ended, which is still the truth.
        """
        instrument = self._resolve(input_message.instrument)
        source = instrument.source
        sent: dict[str, tuple[str, str | None]] = {}
        with source.books.subscribe() as subscription:
            if source.books.latest() is None:  # nothing published yet: all still syncing
                for message in self._changes(source, None, sent):
                    yield message
            async for book in subscription:
                for message in self._changes(source, book.state, sent):
                    yield message
        raise RpcFailedError(ENDED)

    @staticmethod
    def _changes(
        source: InstrumentSource, state: BookState | None, sent: dict[str, tuple[str, str | None]]
    ) -> list[Any]:
        clock = WallClock.now()
        out = []
        for health in venue_healths(source.venues, state):
            now = (health.state, health.reason)
            if sent.get(health.venue) == now:
                continue
            sent[health.venue] = now
            update = VenueStatusUpdate(instrument=source.name, venue=venue_status(health, clock))
            update.time.FromNanoseconds(clock.time_ns)
            out.append(update)
        return out
