"""Bitstamp: ``bts:subscribe`` channels, top-100 snapshots and full-depth diffs.

Wire schema here is shared by the feed and the simulator. ``BitstampProtocol`` is
the sans-I/O client side. Bitstamp's diffs carry no sequence number, only a
``microtimestamp``, so the diff book is synced by time: drop what the REST
snapshot already contains, apply the rest in order, and since a lost message can
never be detected, start from a fresh snapshot after every reconnect.
"""

from __future__ import annotations

from typing import Final

import msgspec

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.book import PriceAmount
from dragonflybot.venues.base import (
    BAD_INPUT,
    BookChanged,
    Dropped,
    Event,
    FetchSnapshot,
    Ignored,
    RawLevels,
    ReconnectNow,
    SubscriptionRejected,
    VenueNotice,
    VenueProtocol,
    join_url,
    parse_int,
    require_alnum,
)
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.diff_sync import DiffSync, SnapshotBody
from dragonflybot.venues.requests import SnapshotRequests
from dragonflybot.venues.spec import VenueSpec

NAME = "bitstamp"
DEFAULT_WS_URL = "wss://ws.bitstamp.net"
DEFAULT_REST_URL = "https://www.bitstamp.net"

SUBSCRIBE: Final = "bts:subscribe"
SUBSCRIBED: Final = "bts:subscription_succeeded"
ERROR: Final = "bts:error"
REQUEST_RECONNECT: Final = "bts:request_reconnect"
HEARTBEAT: Final = "bts:heartbeat"
DATA: Final = "data"


class BookData(msgspec.Struct):
    """``data`` of ``order_book_<pair>`` (top 100) and ``diff_order_book_<pair>`` events."""

    microtimestamp: str
    bids: RawLevels
    asks: RawLevels
    timestamp: str | None = None


class BookDataRaw(msgspec.Struct):
    """``BookData`` of ``order_book_<pair>`` with each side kept as raw JSON, parsed only
    as deep as it is read (``venues.top_levels``)."""

    microtimestamp: str
    bids: msgspec.Raw
    asks: msgspec.Raw
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


class BookFrame(msgspec.Struct):
    """A ``data`` frame with its book decoded in the same pass: the hot path.

    Anything else (acks, errors, heartbeats, a malformed book) fails to decode as
    this and takes the general ``Envelope`` path, which says what it was.
    """

    event: str
    channel: str
    data: BookData


class TopFrame(msgspec.Struct):
    """``BookFrame`` for top mode: the sides stay raw until ``_top_sides``."""

    event: str
    channel: str
    data: BookDataRaw


_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_book_frame_decoder: Final = msgspec.json.Decoder(BookFrame)
_top_frame_decoder: Final = msgspec.json.Decoder(TopFrame)
_book_decoder: Final = msgspec.json.Decoder(BookData)
_rest_decoder: Final = msgspec.json.Decoder(RestOrderBook)
_error_decoder: Final = msgspec.json.Decoder(ErrorData)
_encoder: Final = msgspec.json.Encoder()


def subscribe_request(channel: str) -> str:
    return _encoder.encode(Request(SUBSCRIBE, ChannelRequest(channel))).decode()


def heartbeat_request() -> str:
    return _encoder.encode(Request(HEARTBEAT)).decode()


def order_book_path(pair: str) -> str:
    return f"/api/v2/order_book/{pair}/"


class _DiffSync(DiffSync):
    """The microtimestamp rule: a diff newer than the book is applied, any other dropped.

    ``position`` is the time of the newest state in the book, and a diff spans
    just its own time. Nothing reveals a lost message, so there is no gap to
    detect: the book is only as good as the connection it was synced on.
    """

    snapshot_name = "order_book"
    diff_name = "diffs"

    def __init__(self, url: str) -> None:
        super().__init__(SnapshotRequests(url))

    def apply_live(
        self,
        first: int,
        last: int,
        event_time_ms: int | None,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
    ) -> list[Event]:
        assert self.position is not None
        if last <= self.position:
            self.counters.dropped += 1
            return [Dropped(1, f"diff at {last} not newer than the book")]
        crossed = self.book.apply(bids, asks)
        self.position = last
        self.counters.applied += 1
        if crossed or self.own_integrity:
            return self.verified(event_time_ms)
        return [BookChanged(event_time_ms)]

    def parse_snapshot(self, body: bytes) -> SnapshotBody:
        snapshot = _rest_decoder.decode(body)
        micros = parse_int(snapshot.microtimestamp, "microtimestamp")
        bids = self.levels.snapshot(snapshot.bids)
        asks = self.levels.snapshot(snapshot.asks)
        return SnapshotBody(micros, bids, asks, micros // 1000)


class BitstampProtocol(BookProtocol[_DiffSync]):
    """Sans-I/O Bitstamp client for one currency pair."""

    def __init__(
        self,
        instrument: str,
        *,
        mode: Mode = "top",
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
    ) -> None:
        pair = require_alnum((symbol or symbol_of(instrument)).lower(), f"{NAME}: pair")
        self.pair = pair
        self.channel = f"order_book_{pair}" if mode == "top" else f"diff_order_book_{pair}"
        rest = rest_url or DEFAULT_REST_URL
        sync = _DiffSync(join_url(rest, order_book_path(pair)))
        super().__init__(NAME, mode, ws_url or DEFAULT_WS_URL, rest, (self.channel,), sync)
        self._top_micros: int | None = None

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> BitstampProtocol:
        return cls(
            instrument,
            mode=config.mode,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
        )

    @property
    def venue_seq(self) -> int | None:
        """Bitstamp numbers nothing: its ``microtimestamp`` is the only ordering key (the
        diff sync's position), so it stands in for a sequence: the newest state's time."""
        return self.book_micros

    @property
    def book_micros(self) -> int | None:
        """The microtimestamp of the newest state in the book (``None`` without a book)."""
        if self.mode == "top":
            return self._top_micros
        return self._diff.position

    # --- driving ------------------------------------------------------------------------

    def connection_made(self) -> list[Event]:
        self._top_micros = None
        return super().connection_made()

    def _subscribe_text(self) -> str:
        return subscribe_request(self.channel)

    def heartbeat(self) -> str:
        return heartbeat_request()

    def receive(self, frame: str | bytes) -> list[Event]:
        # Our channel's book in one decode; anything else is sorted out by ``_receive_any``.
        if self.mode == "top":
            try:
                top = _top_frame_decoder.decode(frame)
            except msgspec.DecodeError:
                return self._receive_any(frame)
            if top.event != DATA or top.channel != self.channel:
                return self._receive_any(frame)
            return self._on_top_raw(top.data)
        try:
            msg = _book_frame_decoder.decode(frame)
        except msgspec.DecodeError:
            return self._receive_any(frame)
        if msg.event != DATA or msg.channel != self.channel:
            return self._receive_any(frame)
        return self._on_diff(msg.data)

    def _receive_any(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _envelope_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Bitstamp frame: {exc}")
        event = msg.event
        if event == DATA:
            if msg.channel != self.channel:
                return [Ignored(f"data for channel {msg.channel!r}")]
            try:
                book = _book_decoder.decode(msg.data)
            except BAD_INPUT as exc:
                return self._skip(f"malformed {self.channel} data: {exc}")
            return self._on_book(book)
        if event == SUBSCRIBED:
            if msg.channel != self.channel or self._subscribed:
                return [Ignored(f"subscription of {msg.channel!r} acknowledged")]
            return self._acknowledged()
        if event == ERROR:
            return self._on_error(msg)
        if event == REQUEST_RECONNECT:
            return [ReconnectNow(REQUEST_RECONNECT)]
        if event == HEARTBEAT:
            return [Ignored("heartbeat reply")]
        return [Ignored(f"event {event!r} on channel {msg.channel!r}")]

    # --- internals ----------------------------------------------------------------------

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

    def _on_book(self, msg: BookData) -> list[Event]:
        if self.mode == "top":
            return self._on_top(msg)
        return self._on_diff(msg)

    def _parse_book(self, msg: BookData) -> tuple[int, list[PriceAmount], list[PriceAmount]]:
        micros = parse_int(msg.microtimestamp, "microtimestamp")
        return micros, self._levels(msg.bids), self._levels(msg.asks)

    def _on_top(self, msg: BookData) -> list[Event]:
        try:
            micros, bids, asks = self._parse_book(msg)
            if self._top_micros is not None and micros < self._top_micros:
                self.counters.dropped += 1
                return [Dropped(1, f"order_book at {micros} older than the book")]
            changed = self._replace_top(bids, asks, micros // 1000)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.channel} data: {exc}")
        self._top_micros = micros
        return [changed]

    def _on_top_raw(self, msg: BookDataRaw) -> list[Event]:
        """``_on_top`` parsing only the levels read (the hot path in top mode)."""
        try:
            micros = parse_int(msg.microtimestamp, "microtimestamp")
            bids, asks = self._top_sides(msg.bids, msg.asks)
            if self._top_micros is not None and micros < self._top_micros:
                self.counters.dropped += 1
                return [Dropped(1, f"order_book at {micros} older than the book")]
            changed = self._replace_top_sides(bids, asks, micros // 1000)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.channel} data: {exc}")
        self._top_micros = micros
        return [changed]

    def _on_diff(self, msg: BookData) -> list[Event]:
        try:
            micros = parse_int(msg.microtimestamp, "microtimestamp")
            bids = self._levels(msg.bids)
            asks = self._levels(msg.asks)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.channel} data: {exc}")
        return self._diff.on_diff(micros, micros, micros // 1000, bids, asks)


def symbol_of(instrument: str) -> str:
    """``ETH-BTC`` (or the compact ``ethbtc``) -> Bitstamp's pair ``ethbtc``."""
    return instrument.replace("-", "").lower()


def capture_snapshot(protocol: VenueProtocol) -> FetchSnapshot:
    """The REST order book a capture carries for replays, whatever the mode."""
    assert isinstance(protocol, BitstampProtocol)
    return FetchSnapshot(join_url(protocol.rest_url, order_book_path(protocol.pair)), (), 0, 0.0)


SPEC: Final = VenueSpec(
    name=NAME,
    create=BitstampProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.bitstamp_venue:SIM_VENUE",
    url_hosts=("bitstamp",),
    capture_snapshot=capture_snapshot,
)
