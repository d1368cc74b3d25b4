"""Bybit v5 public spot: ``orderbook.{depth}.{symbol}``, snapshot then deltas, sans-I/O.

Wire schema here is shared by the feed and the simulator. The subscription's first
message is a ``snapshot``; ``delta`` messages follow with absolute sizes (``"0"``
removes). Any later snapshot replaces the book (Bybit resends one after a service-side
problem; ``u == 1`` marks a service restart, whose snapshot overwrites the book like any
other). The update id ``u`` must advance by exactly one per delta: a delta at or below
the book's ``u`` is stale and dropped, a jump means deltas were lost, so the book is
discarded and the topic resubscribed. ``seq`` (cross sequence) and ``cts`` (matching
engine time) of the newest applied message are kept; ``cts`` is the event time.

Sizes (``b``/``a`` second elements) are in the base asset, as for every venue here.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import PriceAmount
from dragonflybot.errors import ConfigError
from dragonflybot.venues.base import (
    BAD_INPUT,
    Dropped,
    Event,
    Ignored,
    RawLevels,
    ReconnectNow,
    SubscriptionRejected,
    VenueNotice,
    require_alnum,
)
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.book_sync import FramesSync
from dragonflybot.venues.spec import VenueSpec

NAME: Final = "bybit"
DEFAULT_WS_URL: Final = "wss://stream.bybit.com/v5/public/spot"
DEFAULT_REST_URL: Final = "https://api.bybit.com"

DEPTHS: Final = (1, 50, 200, 1000)
"""Spot ``orderbook.{depth}`` depths Bybit publishes."""
DEFAULT_DEPTH: Final = 50

SNAPSHOT: Final = "snapshot"
DELTA: Final = "delta"

UpdateId = Annotated[int, msgspec.Meta(ge=1)]
Millis = Annotated[int, msgspec.Meta(ge=0)]


class BookData(msgspec.Struct):
    """``data`` of an order-book message."""

    s: str
    b: RawLevels
    a: RawLevels
    u: UpdateId
    seq: Annotated[int, msgspec.Meta(ge=0)] = 0


class BookMessage(msgspec.Struct):
    """``orderbook.N.SYMBOL`` push: the hot path, decoded in one pass."""

    topic: str
    type: str
    data: BookData
    ts: Millis = 0
    cts: Millis | None = None


class Reply(msgspec.Struct):
    """Anything else: ``{"success":..,"ret_msg":..,"op":..}`` replies to our requests."""

    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    topic: str = ""


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> venue: ``subscribe``, ``unsubscribe`` and ``ping``."""

    op: str
    args: list[str] = []
    req_id: str = ""


_book_decoder: Final = msgspec.json.Decoder(BookMessage)
_reply_decoder: Final = msgspec.json.Decoder(Reply)
_encoder: Final = msgspec.json.Encoder()


def request(op: str, topic: str | None = None) -> str:
    return _encoder.encode(Request(op, [topic] if topic else [], op)).decode()


def topic_of(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


class _Sync(FramesSync):
    """``position`` is the book's ``u``; each delta must be exactly the next one."""

    update_name = "deltas"

    def continues(self, position: int, first: int, last: int) -> bool:
        return first == position + 1


class BybitProtocol(BookProtocol[_Sync]):
    """Sans-I/O Bybit v5 spot order-book client for one symbol.

    Both modes serve the same book, from the stream's own snapshot (no REST).
    """

    def __init__(
        self,
        instrument: str,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        depth: int | None = None,
    ) -> None:
        sym = require_alnum(symbol or symbol_of(instrument), f"{NAME}: symbol")
        levels = DEFAULT_DEPTH if depth is None else depth
        if levels not in DEPTHS:
            raise ConfigError(
                f"{NAME}: depth must be one of {', '.join(map(str, DEPTHS))}, got {levels}"
            )
        self.symbol = sym
        self.depth = levels
        self.topic = topic_of(levels, sym)
        frames = (request("unsubscribe", self.topic), request("subscribe", self.topic))
        super().__init__(
            NAME,
            "depth",
            ws_url or DEFAULT_WS_URL,
            rest_url or DEFAULT_REST_URL,
            (self.topic,),
            _Sync(lambda: frames, depth=levels),
        )
        self.seq: int | None = None
        """``seq`` (cross sequence) of the newest applied message."""
        self.cts: int | None = None
        """``cts`` (matching engine time, ms) of the newest applied message."""
        self.restarts = 0
        """Snapshots with ``u == 1`` (service restarts) received."""

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> BybitProtocol:
        return cls(
            instrument,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
            depth=config.depth,
        )

    @property
    def venue_seq(self) -> int | None:
        """The book's update id ``u`` (consecutive per topic; ``seq``, the cross sequence
        across depth streams, is kept as ``self.seq``)."""
        return self._diff.position

    @property
    def update_id(self) -> int | None:
        """The book's ``u`` (``None`` without a book)."""
        return self._diff.position

    # --- driving ------------------------------------------------------------------------

    def _subscribe_text(self) -> str:
        return request("subscribe", self.topic)

    def heartbeat(self) -> str:
        return request("ping")

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _book_decoder.decode(frame)
        except msgspec.DecodeError:
            return self._receive_any(frame)
        return self._on_book(msg)

    def _receive_any(self, frame: str | bytes) -> list[Event]:
        try:
            reply = _reply_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Bybit message: {exc}")
        if reply.topic:
            if reply.topic == self.topic:
                # Our topic, but not a valid book message: say what is wrong with it.
                try:
                    _book_decoder.decode(frame)
                except BAD_INPUT as exc:
                    return self._skip(f"malformed {self.topic}: {exc}")
            return [Ignored(f"topic {reply.topic[:60]!r}")]
        op = reply.op
        if op == "ping" or reply.ret_msg in ("pong", "ping"):
            return [Ignored("pong")]
        if op == "subscribe":
            if reply.success:
                if self._subscribed:
                    return [Ignored("subscribe acknowledged")]
                return self._acknowledged()
            message = reply.ret_msg[:200] or "subscribe failed"
            if not self._subscribed:
                return [SubscriptionRejected(self.topic, message)]
            return [ReconnectNow(f"resubscription refused: {message}")]
        if op == "unsubscribe":
            return [Ignored("unsubscribe acknowledged")]
        if reply.success is False:
            return [VenueNotice(reply.ret_msg[:200] or f"{op or 'request'} failed")]
        return [Ignored(f"op {op[:20]!r}")]

    # --- internals ----------------------------------------------------------------------

    def _on_book(self, msg: BookMessage) -> list[Event]:
        if msg.topic != self.topic:
            return [Ignored(f"topic {msg.topic[:60]!r}")]
        data = msg.data
        try:
            if data.s != self.symbol:
                raise ValueError(f"symbol {data.s[:20]!r} on {self.topic}")
            kind = msg.type
            if kind == SNAPSHOT:
                bids = self._levels.snapshot(data.b)
                asks = self._levels.snapshot(data.a)
            elif kind == DELTA:
                bids = self._levels(data.b)
                asks = self._levels(data.a)
            else:
                raise ValueError(f"type {kind[:20]!r}")
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.topic}: {exc}")
        event_ms = msg.cts if msg.cts is not None else msg.ts
        sync = self._diff
        if kind == SNAPSHOT:
            if data.u == 1:
                self.restarts += 1
            events = sync.on_snapshot(data.u, bids, asks, event_ms)
        else:
            position = sync.position
            if position is not None and data.u <= position:
                sync.counters.dropped += 1
                return [Dropped(1, f"delta u={data.u} not after the book's u={position}")]
            events = self._apply_delta(data.u, bids, asks, event_ms)
        if sync.position is not None:
            self.seq = data.seq
            self.cts = event_ms
        return events

    def _apply_delta(
        self, u: int, bids: list[PriceAmount], asks: list[PriceAmount], event_ms: int
    ) -> list[Event]:
        return self._diff.on_update(u, u, bids, asks, event_ms)


def symbol_of(instrument: str) -> str:
    """``ETH-BTC`` (or the compact ``ethbtc``) -> Bybit's symbol ``ETHBTC``."""
    return instrument.replace("-", "").upper()


SPEC: Final = VenueSpec(
    name=NAME,
    create=BybitProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.bybit_venue:SIM_VENUE",
    url_hosts=("bybit",),
)
