"""Bitstamp: ``bts:subscribe`` channels, top-100 snapshots and full-depth diffs.

Wire schema here is shared by the feed and the simulator. ``BitstampProtocol`` is
the sans-I/O client side. Bitstamp's diffs carry no sequence number, only a
``microtimestamp``, so the diff book is synced by time: drop what the REST
snapshot already contains, apply the rest in order, and since a lost message can
never be detected, start from a fresh snapshot after every reconnect.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import attrs
import msgspec

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.book import FullDepthBook, Level, Side, TopBook
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.venues.base import (
    BookChanged,
    Dropped,
    Event,
    Ignored,
    ReconnectNow,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
    SyncCounters,
    VenueNotice,
    VenueProtocol,
    join_url,
    parse_int,
    parse_levels,
)
from dragonflybot.venues.requests import SnapshotRequests

NAME = "bitstamp"
DEFAULT_WS_URL = "wss://ws.bitstamp.net"
DEFAULT_REST_URL = "https://www.bitstamp.net"

SUBSCRIBE: Final = "bts:subscribe"
SUBSCRIBED: Final = "bts:subscription_succeeded"
ERROR: Final = "bts:error"
REQUEST_RECONNECT: Final = "bts:request_reconnect"
HEARTBEAT: Final = "bts:heartbeat"
DATA: Final = "data"

RawLevels = list[tuple[str, str]]


class BookData(msgspec.Struct):
    """``data`` of ``order_book_<pair>`` (top 100) and ``diff_order_book_<pair>`` events."""

    microtimestamp: str
    bids: RawLevels
    asks: RawLevels
    timestamp: str | None = None


class RestOrderBook(msgspec.Struct):
    """REST ``GET /api/v2/order_book/<pair>/`` body (the full aggregated book)."""

    microtimestamp: str
    bids: RawLevels
    asks: RawLevels
    timestamp: str | None = None


class Envelope(msgspec.Struct):
    """Every frame: ``{"event": ..., "channel": ..., "data": ...}``; ``data`` decoded later."""

    event: str
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class ChannelRequest(msgspec.Struct):
    channel: str


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> venue: ``bts:subscribe``, ``bts:unsubscribe``, ``bts:heartbeat``.

    ``omit_defaults`` so the heartbeat encodes as ``{"event":"bts:heartbeat"}``.
    """

    event: str
    data: ChannelRequest | None = None


class ErrorData(msgspec.Struct):
    message: str = ""
    code: int | str | None = None


_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_book_decoder: Final = msgspec.json.Decoder(BookData)
_rest_decoder: Final = msgspec.json.Decoder(RestOrderBook)
_error_decoder: Final = msgspec.json.Decoder(ErrorData)
_encoder: Final = msgspec.json.Encoder()

_BAD_INPUT = (msgspec.DecodeError, DecodeError, ValueError)
"""What decoding/validating untrusted input may raise (msgspec's ValidationError included)."""


def subscribe_request(channel: str) -> str:
    return _encoder.encode(Request(SUBSCRIBE, ChannelRequest(channel))).decode()


def heartbeat_request() -> str:
    return _encoder.encode(Request(HEARTBEAT)).decode()


def order_book_path(pair: str) -> str:
    return f"/api/v2/order_book/{pair}/"


@attrs.define(slots=True)
class _Diff:
    """A validated diff, levels already parsed: safe to buffer and apply later."""

    micros: int
    bids: list[Level]
    asks: list[Level]


class _DiffSync:
    """The microtimestamp state machine: buffer, snapshot, drop what it holds, apply newer.

    ``last_micros`` is the time of the newest state in the book (``None`` while
    unsynced). A snapshot older than the first buffered diff may miss messages
    sent before the subscription took effect, so it is fetched again.
    """

    MAX_BUFFER: Final = 10_000
    """Diffs kept while unsynced: bounds memory when REST is down."""

    def __init__(self, url: str) -> None:
        self.book = FullDepthBook()
        self.counters = SyncCounters()
        self.requests = SnapshotRequests(url)
        self.buffer: deque[_Diff] = deque()
        self.last_micros: int | None = None

    def reset(self) -> None:
        self.book.clear()
        self.buffer.clear()
        self.last_micros = None
        self.requests.cancel()

    def on_diff(self, diff: _Diff) -> list[Event]:
        if self.last_micros is not None:
            return self._apply_live(diff)
        events: list[Event] = []
        if len(self.buffer) >= self.MAX_BUFFER:
            events.append(Dropped(len(self.buffer), "buffer overflow while waiting for a snapshot"))
            self.counters.dropped += len(self.buffer)
            self.buffer.clear()
            self.requests.cancel()
        self.buffer.append(diff)
        if not self.requests.in_flight:
            events.append(self.requests.request())
        return events

    def _apply_live(self, diff: _Diff) -> list[Event]:
        assert self.last_micros is not None
        if diff.micros <= self.last_micros:
            self.counters.dropped += 1
            return [Dropped(1, f"diff at {diff.micros} not newer than the book")]
        self.book.apply(diff.bids, diff.asks)
        self.last_micros = diff.micros
        self.counters.applied += 1
        return [BookChanged(diff.micros // 1000)]

    def on_snapshot(self, token: int, body: bytes) -> list[Event]:
        if not self.requests.answer(token):
            return [Ignored("response to a snapshot request given up on")]
        try:
            snapshot = _rest_decoder.decode(body)
            micros = parse_int(snapshot.microtimestamp, "microtimestamp")
            bids = parse_levels(snapshot.bids)
            asks = parse_levels(snapshot.asks)
        except _BAD_INPUT as exc:
            self.counters.skipped += 1
            self.counters.refetches += 1
            return [Skipped(f"malformed order_book snapshot: {exc}"), self.requests.request()]
        if self.buffer and self.buffer[0].micros > micros:
            self.counters.refetches += 1
            return [self.requests.request()]
        events: list[Event] = []
        stale = 0
        while self.buffer and self.buffer[0].micros <= micros:
            self.buffer.popleft()
            stale += 1
        if stale:
            self.counters.dropped += stale
            events.append(Dropped(stale, f"buffered diffs not newer than snapshot {micros}"))
        self.book.load(bids, asks)
        self.counters.snapshots += 1
        self.last_micros = micros
        self.requests.done()
        while self.buffer:
            for event in self._apply_live(self.buffer.popleft()):
                if isinstance(event, Dropped):
                    events.append(event)
        events.append(BookChanged(self.last_micros // 1000))
        return events


class BitstampProtocol(VenueProtocol):
    """Sans-I/O Bitstamp client for one currency pair."""

    def __init__(
        self,
        instrument: str,
        *,
        mode: Mode = "snapshot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
    ) -> None:
        pair = (symbol or instrument).lower()
        if not pair or not pair.isascii() or not pair.isalnum():
            raise ConfigError(f"{NAME}: pair must be ASCII letters/digits, got {pair!r}")
        self.venue = NAME
        self.mode = mode
        self.ws_url = ws_url or DEFAULT_WS_URL
        self.rest_url = rest_url or DEFAULT_REST_URL
        self.pair = pair
        self.channel = f"order_book_{pair}" if mode == "snapshot" else f"diff_order_book_{pair}"
        self.streams = (self.channel,)
        self._diff = _DiffSync(join_url(self.rest_url, order_book_path(pair)))
        self.counters = self._diff.counters
        self._top = TopBook()
        self._top_micros: int | None = None
        self._subscribed = False

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> BitstampProtocol:
        return cls(
            instrument,
            mode=config.mode,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
        )

    # --- state --------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def synced(self) -> bool:
        return self._subscribed and (self.mode == "snapshot" or self._diff.last_micros is not None)

    @property
    def has_book(self) -> bool:
        if self.mode == "snapshot":
            return self._top_micros is not None
        return self._diff.last_micros is not None

    @property
    def book_micros(self) -> int | None:
        """The microtimestamp of the newest state in the book (``None`` without a book)."""
        if self.mode == "snapshot":
            return self._top_micros
        return self._diff.last_micros

    @property
    def full_book(self) -> FullDepthBook:
        """Diff mode: the whole book (for checks; publish through ``top_*``)."""
        return self._diff.book

    def top_bids(self, n: int) -> Side:
        if self.mode == "snapshot":
            return self._top.top_bids(n)
        return self._diff.book.top_bids(n)

    def top_asks(self, n: int) -> Side:
        if self.mode == "snapshot":
            return self._top.top_asks(n)
        return self._diff.book.top_asks(n)

    # --- driving ------------------------------------------------------------------------

    def connection_made(self) -> list[Event]:
        self._subscribed = False
        self._top.clear()
        self._top_micros = None
        self._diff.reset()
        return [SendText(subscribe_request(self.channel))]

    def heartbeat(self) -> str:
        return heartbeat_request()

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _envelope_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Bitstamp frame: {exc}")
        event = msg.event
        if event == DATA:
            if msg.channel != self.channel:
                return [Ignored(f"data for channel {msg.channel!r}")]
            if self.mode == "snapshot":
                return self._on_top(msg.data)
            return self._on_diff(msg.data)
        if event == SUBSCRIBED:
            if msg.channel != self.channel or self._subscribed:
                return [Ignored(f"subscription of {msg.channel!r} acknowledged")]
            self._subscribed = True
            return [Subscribed(self.streams)]
        if event == ERROR:
            return self._on_error(msg)
        if event == REQUEST_RECONNECT:
            return [ReconnectNow(REQUEST_RECONNECT)]
        if event == HEARTBEAT:
            return [Ignored("heartbeat reply")]
        return [Ignored(f"event {event!r} on channel {msg.channel!r}")]

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        if self.mode == "snapshot":
            return super().snapshot_received(token, body)
        return self._diff.on_snapshot(token, body)

    # --- internals ----------------------------------------------------------------------

    def _skip(self, reason: str) -> list[Event]:
        self.counters.skipped += 1
        return [Skipped(reason)]

    def _on_error(self, msg: Envelope) -> list[Event]:
        try:
            message = _error_decoder.decode(msg.data).message
        except msgspec.DecodeError:
            message = bytes(msg.data)[:200].decode(errors="replace")
        if msg.channel and msg.channel != self.channel:
            return [VenueNotice(f"error on channel {msg.channel!r}: {message}")]
        if not self._subscribed:
            # Bitstamp reports most errors with an empty channel; before the ack
            # the only request outstanding is our subscription.
            return [SubscriptionRejected(self.channel, message or "bts:error")]
        return [VenueNotice(message or "bts:error")]

    def _parse_book(self, data: msgspec.Raw) -> tuple[int, list[Level], list[Level]]:
        msg = _book_decoder.decode(data)
        micros = parse_int(msg.microtimestamp, "microtimestamp")
        return micros, parse_levels(msg.bids), parse_levels(msg.asks)

    def _on_top(self, data: msgspec.Raw) -> list[Event]:
        try:
            micros, bids, asks = self._parse_book(data)
            if self._top_micros is not None and micros < self._top_micros:
                self.counters.dropped += 1
                return [Dropped(1, f"order_book at {micros} older than the book")]
            self._top.replace(bids, asks)  # validates order before replacing anything
        except _BAD_INPUT as exc:
            return self._skip(f"malformed {self.channel} data: {exc}")
        self._top_micros = micros
        self.counters.applied += 1
        return [BookChanged(micros // 1000)]

    def _on_diff(self, data: msgspec.Raw) -> list[Event]:
        try:
            micros, bids, asks = self._parse_book(data)
        except _BAD_INPUT as exc:
            return self._skip(f"malformed {self.channel} data: {exc}")
        return self._diff.on_diff(_Diff(micros, bids, asks))
