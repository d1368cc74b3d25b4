"""Kraken spot, WebSocket v2 ``book`` channel: stream snapshot, updates, CRC32 over the top 10.

Wire schema here is shared by the feed and the simulator (``sim.kraken_wire``).
``KrakenProtocol`` is the sans-I/O client for one pair (``shared/venues.md`` 4.3, 4.4):

* Subscribing makes Kraken send the book (``type: snapshot``), then ``update``
  messages with absolute quantities (``qty: 0`` removes). After every message the
  book is cut to the subscribed depth, because Kraken sends no delete for a level
  that falls out of scope, and the CRC32 of the best 10 asks and bids must equal the
  message's ``checksum``; otherwise the book is discarded unpublished and the pair
  alone is unsubscribed and subscribed again (``book_sync.StreamSync``).
* v2 sends prices and quantities as JSON numbers; the checksum writes them with the
  pair's ``price_precision`` and ``qty_precision``. Those come from the constructor
  when configured, else from v2's own ``instrument`` channel on the same connection:
  subscribed first, the book is subscribed once the pair's precisions arrived. That
  needs no REST dependency, is fresh on every connection, and a later precision
  change on that channel resubscribes the book (its tokens were written with the
  old one). REST ``AssetPairs`` (``pair_decimals``/``lot_decimals``) gives the same
  numbers and can be passed in as configuration.
* Numbers are decoded straight to ``Decimal`` (exact, never through a float) and
  then to ``Fixed``.
* ``heartbeat()`` is v2's app-level ping; the venue's ``heartbeat`` channel and
  ``pong`` replies are ignored (they only prove the connection alive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Final, Literal

import msgspec

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import WireLevel
from dragonflybot.core.fixed import ONE, SCALE, Fixed
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.instrument import canonical
from dragonflybot.venues import kraken_checksum
from dragonflybot.venues.base import (
    BAD_INPUT,
    Event,
    Ignored,
    ReconnectNow,
    SendText,
    SubscriptionRejected,
    VenueNotice,
)
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.book_sync import FramesSync
from dragonflybot.venues.spec import VenueSpec

NAME: Final = "kraken"
DEFAULT_WS_URL: Final = "wss://ws.kraken.com/v2"
DEFAULT_REST_URL: Final = "https://api.kraken.com"
BOOK: Final = "book"
INSTRUMENT: Final = "instrument"
DEPTHS: Final = (10, 25, 100, 500, 1000)
"""The only depths the ``book`` channel offers."""
DEFAULT_DEPTH: Final = 10
MAX_MAGNITUDE: Final = 30
"""Decimal exponent bound for a price or quantity (a guard against absurd numbers)."""

Precision = Annotated[int, msgspec.Meta(ge=0, le=kraken_checksum.MAX_PRECISION)]
Checksum = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
_SYMBOL: Final = re.compile(r"[A-Z0-9]{1,16}/[A-Z0-9]{1,16}", re.ASCII)


# --- wire schema --------------------------------------------------------------------------


class PriceQty(msgspec.Struct):
    """One level: JSON numbers, decoded exactly."""

    price: Decimal
    qty: Decimal


class BookData(msgspec.Struct, kw_only=True):
    """One symbol's part of a ``book`` message."""

    symbol: str
    bids: list[PriceQty] = []
    asks: list[PriceQty] = []
    checksum: Checksum
    timestamp: str | None = None


class BookMessage(msgspec.Struct):
    """``{"channel":"book","type":"snapshot"|"update","data":[...]}``."""

    channel: str
    type: str
    data: list[BookData]


class PairInfo(msgspec.Struct):
    """A pair of the ``instrument`` channel, only what the checksum needs.

    Optional so that one odd entry among the venue's hundreds of pairs cannot make
    the whole list undecodable; our own pair's entry is checked when used.
    """

    symbol: str | None = None
    price_precision: Precision | None = None
    qty_precision: Precision | None = None


class InstrumentData(msgspec.Struct):
    pairs: list[PairInfo] = []


class InstrumentMessage(msgspec.Struct):
    """``{"channel":"instrument","type":"snapshot"|"update","data":{"assets":..,"pairs":..}}``."""

    channel: str
    type: str
    data: InstrumentData


class Envelope(msgspec.Struct):
    """Any frame, decoded just enough to dispatch it (data channel or method reply)."""

    channel: str | None = None
    type: str | None = None
    method: str | None = None
    success: bool | None = None
    error: str | None = None
    req_id: int | None = None


class Params(msgspec.Struct, omit_defaults=True):
    channel: str
    symbol: list[str] | None = None
    depth: int | None = None
    snapshot: bool | None = None


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> venue: ``subscribe``, ``unsubscribe``, ``ping``."""

    method: str
    params: Params | None = None
    req_id: int | None = None


_book_decoder: Final = msgspec.json.Decoder(BookMessage)
_instrument_decoder: Final = msgspec.json.Decoder(InstrumentMessage)
_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_encoder: Final = msgspec.json.Encoder()


def book_request(method: str, symbol: str, depth: int, req_id: int) -> str:
    """``subscribe`` (with the snapshot) or ``unsubscribe`` of one pair's book."""
    snapshot = True if method == "subscribe" else None
    params = Params(BOOK, [symbol], depth, snapshot)
    return _encoder.encode(Request(method, params, req_id)).decode()


def instrument_request(req_id: int) -> str:
    return _encoder.encode(Request("subscribe", Params(INSTRUMENT, snapshot=True), req_id)).decode()


def ping_request() -> str:
    return _encoder.encode(Request("ping")).decode()


def book_depth(levels: int | None) -> int:
    """The smallest channel depth serving ``levels`` (at least the 10 the checksum covers)."""
    if levels is None:
        return DEFAULT_DEPTH
    for depth in DEPTHS:
        if levels <= depth:
            return depth
    raise ConfigError(f"{NAME}: the book channel offers at most {DEPTHS[-1]} levels, got {levels}")


def pair_symbol(instrument: str, symbol: str | None = None) -> str:
    """The v2 symbol (``ETH/BTC``) of a canonical instrument (``ETH-BTC``) or an explicit one.

    v2 spells Bitcoin ``BTC`` (v1 and REST say ``XBT``): the canonical assets are used
    as they are. A compact name (``ethbtc``) is split on the known quote assets.
    """
    text = symbol if symbol is not None else canonical(instrument).replace("-", "/")
    if not _SYMBOL.fullmatch(text):
        raise ConfigError(
            f"{NAME}: symbol must look like 'ETH/BTC' (or the instrument like 'ETH-BTC'); "
            f"got {text!r}: set the venue's symbol"
        )
    return text


def to_fixed(value: Decimal) -> Fixed:
    """A non-negative finite decimal with at most ``SCALE`` decimals, exactly."""
    if value.is_nan() or value.is_infinite():
        raise DecodeError(f"not a finite number: {value}")
    if value.adjusted() > MAX_MAGNITUDE:
        raise DecodeError(f"number {value} is too large")
    numerator, denominator = value.as_integer_ratio()
    if numerator < 0:
        raise DecodeError(f"negative number {value}")
    scaled, rest = divmod(numerator * ONE, denominator)
    if rest:
        raise DecodeError(f"number {value} has more than {SCALE} decimals")
    return scaled


def event_time_ms(timestamp: str | None) -> int | None:
    """RFC 3339 (``2023-10-06T17:35:55.440295Z``) to Unix milliseconds."""
    if timestamp is None:
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"bad timestamp {timestamp[:40]!r}") from exc


class KrakenSync(FramesSync):
    """The ``book`` book: cut to the subscribed depth, CRC32 over the top 10 after each message."""

    update_name = "book updates"

    def integrity(self) -> str | None:
        """CRC32 over the best 10 asks then bids, written at the pair's precision."""
        failure = super().integrity()
        if failure is not None or self.checksum is None:
            return failure
        bids, asks = self.book.wires(kraken_checksum.LEVELS)
        got = kraken_checksum.checksum(asks, bids)
        return None if got == self.checksum else self.checksum_mismatch(got)


RequestKind = Literal["book", "instrument", "unsubscribe"]


class KrakenProtocol(BookProtocol[KrakenSync]):
    """Sans-I/O Kraken v2 client for one pair's ``book`` (mode ignored: the book always
    comes whole from the stream, cut to the subscribed depth)."""

    def __init__(
        self,
        instrument: str,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        depth: int | None = None,
        price_precision: int | None = None,
        qty_precision: int | None = None,
    ) -> None:
        self.symbol = pair_symbol(instrument, symbol)
        self.depth = book_depth(depth)
        if (price_precision is None) != (qty_precision is None):
            raise ConfigError(f"{NAME}: set both price_precision and qty_precision, or neither")
        self._configured: tuple[int, int] | None = None
        if price_precision is not None and qty_precision is not None:
            for value in (price_precision, qty_precision):
                try:
                    kraken_checksum.scale_unit(value)
                except ValueError as exc:
                    raise ConfigError(f"{NAME}: {exc}") from None
            self._configured = (price_precision, qty_precision)
        self.precision: tuple[int, int] | None = self._configured
        """``(price_precision, qty_precision)`` in use; ``None`` until the instrument channel."""
        self._price_unit = 0
        self._qty_unit = 0
        if self._configured is not None:
            self._set_precision(self._configured)
        stream = f"{BOOK}-{self.depth}:{self.symbol}"
        sync = KrakenSync(self._resubscribe_texts, keep_wire=True, depth=self.depth)
        super().__init__(
            NAME, "depth", ws_url or DEFAULT_WS_URL, rest_url or DEFAULT_REST_URL, (stream,), sync
        )
        self.sync = sync
        self._req_id = 0
        self._pending: dict[int, RequestKind] = {}

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> KrakenProtocol:
        return cls(
            instrument,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
            depth=config.depth,
            price_precision=config.price_precision,
            qty_precision=config.qty_precision,
        )

    # --- requests -----------------------------------------------------------------------

    def _request_id(self, kind: RequestKind) -> int:
        self._req_id += 1
        self._pending[self._req_id] = kind
        return self._req_id

    def _book_subscribe(self) -> str:
        return book_request("subscribe", self.symbol, self.depth, self._request_id("book"))

    def _subscribe_text(self) -> str:
        """The book's subscription when the precision is configured, else the
        ``instrument`` channel's (the book follows once the pair's precisions arrive)."""
        self._pending.clear()
        if self._configured is not None:
            return self._book_subscribe()
        self.precision = None
        return instrument_request(self._request_id("instrument"))

    def _resubscribe_texts(self) -> tuple[str, ...]:
        unsubscribe = book_request(
            "unsubscribe", self.symbol, self.depth, self._request_id("unsubscribe")
        )
        return (unsubscribe, self._book_subscribe())

    def heartbeat(self) -> str:
        return ping_request()

    def _set_precision(self, precision: tuple[int, int]) -> None:
        self.precision = precision
        self._price_unit = kraken_checksum.scale_unit(precision[0])
        self._qty_unit = kraken_checksum.scale_unit(precision[1])

    # --- receiving ----------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[Event]:
        # A book message in one decode; anything else is sorted out by ``_receive_any``.
        try:
            msg = _book_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._receive_any(frame, exc)
        if msg.channel != BOOK:
            return self._receive_any(frame, None)
        return self._on_book(msg)

    def _receive_any(self, frame: str | bytes, book_error: Exception | None) -> list[Event]:
        """Anything but a well-formed book message; ``book_error`` says why it was not one."""
        try:
            msg = _envelope_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Kraken v2 frame: {exc}")
        channel = msg.channel
        if channel == BOOK:
            snapshot = msg.type == "snapshot"
            return self._skip_book(f"malformed book message: {book_error}", snapshot=snapshot)
        if channel == INSTRUMENT:
            return self._on_instrument(frame)
        if channel is not None:
            return [Ignored(f"channel {channel!r}")]  # heartbeat, status, others
        if msg.method is not None:
            return self._on_reply(msg)
        return self._skip("neither channel data nor a method reply")

    def _on_reply(self, msg: Envelope) -> list[Event]:
        if msg.method == "pong":
            return [Ignored("pong")]
        kind = self._pending.pop(msg.req_id, None) if msg.req_id is not None else None
        if kind is None:
            return [Ignored(f"{msg.method} reply to req_id {msg.req_id!r} not awaited")]
        if msg.success:
            if kind == "book" and not self._subscribed:
                return self._acknowledged()
            return [Ignored(f"{kind} request {msg.req_id} acknowledged")]
        error = msg.error or "no reason given"
        if kind == "unsubscribe":
            return [VenueNotice(f"unsubscribe of {self.symbol} refused: {error}")]
        if kind == "book" and self._subscribed:
            # A resubscription refused: a fresh connection is the remaining way back.
            return [ReconnectNow(f"resubscribe of {self.streams[0]} refused: {error}")]
        stream = self.streams[0] if kind == "book" else INSTRUMENT
        return [SubscriptionRejected(stream, error)]

    def _on_instrument(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _instrument_decoder.decode(frame)
        except BAD_INPUT as exc:
            return self._skip(f"malformed instrument message: {exc}")
        if self._configured is not None:
            return [Ignored("instrument data (precision configured)")]
        found = [pair for pair in msg.data.pairs if pair.symbol == self.symbol]
        if not found:
            if msg.type == "snapshot" and self.precision is None:
                return [SubscriptionRejected(self.streams[0], f"{self.symbol} is not listed")]
            return [Ignored(f"instrument {msg.type} without {self.symbol}")]
        pair = found[-1]
        if pair.price_precision is None or pair.qty_precision is None:
            return self._skip(f"instrument {msg.type}: {self.symbol} without its precisions")
        precision = (pair.price_precision, pair.qty_precision)
        if self.precision is None:
            self._set_precision(precision)
            return [SendText(self._book_subscribe())]
        if precision == self.precision:
            return [Ignored(f"instrument {msg.type}: {self.symbol} unchanged")]
        self._set_precision(precision)
        # Book tokens were written with the old precision: start over from a snapshot.
        return self.sync.integrity_failed(f"{self.symbol} precision changed to {precision}")

    def _on_book(self, msg: BookMessage) -> list[Event]:
        kind = msg.type
        if kind not in ("snapshot", "update"):
            return self._skip(f"book message of type {kind!r}")
        snapshot = kind == "snapshot"
        if self.precision is None:
            return self._skip("book message before the pair's precision is known")
        parsed: list[tuple[list[WireLevel], list[WireLevel], int, int | None]] = []
        try:
            for data in msg.data:
                if data.symbol != self.symbol:
                    continue
                parsed.append(
                    (
                        self._wire_levels(data.bids),
                        self._wire_levels(data.asks),
                        data.checksum,
                        event_time_ms(data.timestamp),
                    )
                )
        except BAD_INPUT as exc:
            return self._skip_book(f"malformed book {kind}: {exc}", snapshot=snapshot)
        if not parsed:
            return [Ignored("book data for other symbols")]
        events: list[Event] = []
        sync = self.sync
        for bids, asks, checksum, event_ms in parsed:
            if snapshot:
                events += sync.on_wire_snapshot(0, bids, asks, event_ms, checksum)
            else:
                events += sync.on_wire_update(0, 0, bids, asks, event_ms, checksum)
            if sync.position is None:
                break  # dropped, or discarded and resubscribed: the rest is moot
        return events

    def _wire_levels(self, raw: Sequence[PriceQty]) -> list[WireLevel]:
        price_unit = self._price_unit
        qty_unit = self._qty_unit
        token = kraken_checksum.v2_token
        out: list[WireLevel] = []
        for level in raw:
            price = to_fixed(level.price)
            qty = to_fixed(level.qty)
            if not price:
                raise DecodeError("price zero")
            out.append((price, qty, token(price, qty, price_unit, qty_unit) if qty else ""))
        return out


def symbol_of(instrument: str) -> str:
    """``ETH-BTC`` -> Kraken v2's ``ETH/BTC``."""
    return pair_symbol(instrument)


SPEC: Final = VenueSpec(
    name=NAME,
    create=KrakenProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.kraken_venue:SIM_VENUE",
    url_hosts=("kraken",),
)
