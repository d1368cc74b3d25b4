"""Coinbase Advanced Trade: the ``level2`` channel (plus ``heartbeats``), sans-I/O.

Wire schema here is shared by the feed and the simulator. The book comes whole on the
stream: the first ``l2_data`` event for a product is a ``snapshot``, then ``update``
events carry absolute quantities (``"0"`` removes a level). Coinbase numbers every
message of a connection (``sequence_num``, across channels): a number that does not
follow the previous one means messages were lost, so the book is discarded and the
product resubscribed (a fresh snapshot), counted as a gap. The ``heartbeats`` channel
is subscribed too, so a quiet product does not get its connection closed by the venue
after 60-90 s, and its numbered frames prove the connection alive meanwhile.

Sizes (``new_quantity``) are in the base asset, as for every venue here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

import msgspec

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import PriceAmount
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.instrument import canonical
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

NAME: Final = "coinbase"
DEFAULT_WS_URL: Final = "wss://advanced-trade-ws.coinbase.com"
DEFAULT_REST_URL: Final = "https://api.coinbase.com"

LEVEL2: Final = "level2"
HEARTBEATS: Final = "heartbeats"
L2_DATA: Final = "l2_data"
SUBSCRIPTIONS: Final = "subscriptions"
BID: Final = "bid"
OFFER: Final = "offer"

SequenceNum = Annotated[int, msgspec.Meta(ge=0)]


class L2Level(msgspec.Struct):
    """One ``updates[]`` item: an absolute quantity at a price on one side."""

    side: str
    price_level: str
    new_quantity: str
    event_time: str = ""


class L2Event(msgspec.Struct):
    """One ``events[]`` item of an ``l2_data`` message."""

    type: str
    product_id: str
    updates: list[L2Level]


class L2Frame(msgspec.Struct):
    """An ``l2_data`` message decoded in one pass: the hot path."""

    channel: str
    sequence_num: SequenceNum
    events: list[L2Event]
    timestamp: str = ""


class Envelope(msgspec.Struct):
    """Any message: the channel and number first, the events decoded by channel later.

    Errors come as ``{"type": "error", "message": ...}`` without a channel or number.
    """

    channel: str = ""
    sequence_num: SequenceNum | None = None
    events: msgspec.Raw = msgspec.Raw(b"[]")
    type: str = ""
    message: str = ""


class SubscriptionsEvent(msgspec.Struct):
    """``events[]`` of a ``subscriptions`` message: channel -> product ids subscribed."""

    subscriptions: dict[str, list[str]]


class Request(msgspec.Struct, omit_defaults=True):
    """Client -> venue: ``subscribe`` / ``unsubscribe``, one channel per message."""

    type: str
    product_ids: list[str]
    channel: str
    jwt: str | None = None


_l2_decoder: Final = msgspec.json.Decoder(L2Frame)
_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_l2_events_decoder: Final = msgspec.json.Decoder(list[L2Event])
_subscriptions_decoder: Final = msgspec.json.Decoder(list[SubscriptionsEvent])
_encoder: Final = msgspec.json.Encoder()


def request(kind: str, product: str, channel: str, jwt: str | None = None) -> str:
    return _encoder.encode(Request(kind, [product], channel, jwt)).decode()


class _TimeCache:
    """RFC 3339 UTC times (``2026-04-07T14:30:01.456789123Z``) -> epoch milliseconds.

    Every message carries one, and consecutive messages mostly share their second: the
    ``YYYY-MM-DDTHH:MM:SS`` part is validated and converted once per second, the
    fraction per message (a profile showed the full parse at a fifth of the listener).
    """

    __slots__ = ("_second", "_second_ms")

    def __init__(self) -> None:
        self._second = ""
        self._second_ms = 0

    def __call__(self, text: str) -> int:
        second = text[:19]
        if second != self._second:
            self._second_ms = _second_ms(text)
            self._second = second
        fraction = text[19:]
        if fraction == "Z":
            return self._second_ms
        digits = fraction[1:-1]
        if (
            fraction[:1] != "."
            or fraction[-1:] != "Z"
            or not digits
            or not (digits.isascii() and digits.isdigit())
        ):
            raise DecodeError(f"not an RFC 3339 UTC time: {text[:40]!r}")
        return self._second_ms + int((digits + "00")[:3])


def _second_ms(text: str) -> int:
    """Milliseconds since the epoch of ``text``'s ``YYYY-MM-DDTHH:MM:SS`` (UTC)."""
    head = text[:19]
    if len(head) != 19 or not head.isascii() or head[10] != "T":
        raise DecodeError(f"not an RFC 3339 UTC time: {text[:40]!r}")
    try:
        moment = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DecodeError(f"not an RFC 3339 UTC time: {text[:40]!r}") from exc
    return int(moment.timestamp()) * 1000


class _Sync(FramesSync):
    """``position`` is the ``sequence_num`` of the message that last changed the book."""

    update_name = "l2_data updates"


class CoinbaseProtocol(BookProtocol[_Sync]):
    """Sans-I/O Coinbase Advanced Trade ``level2`` client for one product.

    Both modes serve the same book: ``level2`` is the only order-book channel, and it
    always starts from a full snapshot on the stream (no REST).
    """

    def __init__(
        self,
        instrument: str,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        jwt: str | None = None,
    ) -> None:
        product = symbol or symbol_of(instrument)
        if not product or not product.isascii() or not product.replace("-", "").isalnum():
            raise ConfigError(f"{NAME}: product id must be ASCII letters/digits/'-': {product!r}")
        self.product = product
        self._jwt = jwt
        """Sent in subscribe requests when configured; never in a log line or an event
        other than the ``SendText`` that carries it to the venue."""
        resubscribe = (
            request("unsubscribe", product, LEVEL2, jwt),
            request("subscribe", product, LEVEL2, jwt),
        )
        super().__init__(
            NAME,
            "depth",
            ws_url or DEFAULT_WS_URL,
            rest_url or DEFAULT_REST_URL,
            (f"{LEVEL2}:{product}",),
            _Sync(lambda: resubscribe),
        )
        self._times = _TimeCache()
        self._sequence: int | None = None
        self.event_time_ms: int | None = None
        """The venue's ``event_time`` of the newest applied update (ms since the epoch);
        our receive time is kept by the feed session for every frame."""

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> CoinbaseProtocol:
        return cls(
            instrument,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
            jwt=config.jwt,
        )

    def __repr__(self) -> str:
        return f"CoinbaseProtocol({self.product!r})"

    @property
    def venue_seq(self) -> int | None:
        """``sequence_num`` of the message that last changed the book (it counts the
        connection's messages across channels, so it restarts on a reconnect)."""
        return self._diff.position

    @property
    def sequence_num(self) -> int | None:
        """The last ``sequence_num`` seen on this connection."""
        return self._sequence

    # --- driving ------------------------------------------------------------------------

    def _subscribe_text(self) -> str:
        return request("subscribe", self.product, LEVEL2, self._jwt)

    def connection_made(self) -> list[Event]:
        self._sequence = None
        events = super().connection_made()
        events.append(SendText(request("subscribe", self.product, HEARTBEATS, self._jwt)))
        return events

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _l2_decoder.decode(frame)
        except msgspec.DecodeError:
            return self._receive_any(frame)
        if msg.channel != L2_DATA:
            return self._receive_any(frame)
        return self._on_l2(msg.events, msg.sequence_num)

    def _receive_any(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _envelope_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Coinbase message: {exc}")
        if msg.type == "error":
            return self._on_error(msg.message)
        number = msg.sequence_num
        if number is None:
            return self._skip(f"{msg.channel or 'message'} without a sequence_num")
        channel = msg.channel
        if channel == L2_DATA:
            try:
                events = _l2_events_decoder.decode(msg.events)
            except BAD_INPUT as exc:
                return self._skip(f"malformed l2_data: {exc}")
            return self._on_l2(events, number)
        if channel == SUBSCRIPTIONS:
            try:
                acks = _subscriptions_decoder.decode(msg.events)
            except BAD_INPUT as exc:
                return self._skip(f"malformed subscriptions: {exc}")
            out = self._sequenced(number)
            if not self._subscribed and any(
                self.product in ack.subscriptions.get(LEVEL2, ()) for ack in acks
            ):
                out += self._acknowledged()
            else:
                out.append(Ignored("subscriptions"))
            return out
        out = self._sequenced(number)
        out.append(Ignored(f"{channel[:40] or 'message'} message"))
        return out

    # --- internals ----------------------------------------------------------------------

    def _sequenced(self, number: int) -> list[Event]:
        """Check the connection's message number; a break resubscribes the product."""
        previous = self._sequence
        self._sequence = number
        if previous is None or number == previous + 1:
            return []
        sync = self._diff
        sync.counters.gaps += 1
        reason = f"sequence_num gap: {previous} then {number}"
        if not self._subscribed:
            # Nothing to resync yet: the subscription's snapshot is still to come.
            return [VenueNotice(reason)]
        return sync.integrity_failed(reason)

    def _on_error(self, message: str) -> list[Event]:
        text = message[:200] or "error"
        if not self._subscribed:
            return [SubscriptionRejected(self.streams[0], text)]
        # An error after the ack answers a resubscription: the venue refused it.
        return [ReconnectNow(f"venue error: {text}")]

    def _on_l2(self, events: list[L2Event], number: int) -> list[Event]:
        # Validate every event of the message before any of it touches the book, and
        # before its number counts: a malformed update is a lost update, so the next
        # good message shows the gap and the book is rebuilt, never silently short.
        parsed: list[tuple[bool, list[PriceAmount], list[PriceAmount], int | None]] = []
        try:
            for event in events:
                if event.product_id != self.product:
                    continue
                if event.type not in ("snapshot", "update"):
                    raise DecodeError(f"event type {event.type[:20]!r}")
                parsed.append((event.type == "snapshot", *self._levels_of(event)))
        except BAD_INPUT as exc:
            return self._skip(f"malformed l2_data: {exc}")
        out = self._sequenced(number)
        if not parsed:
            out.append(Ignored("l2_data for another product"))
            return out
        sync = self._diff
        for snapshot, bids, asks, event_ms in parsed:
            if event_ms is not None:
                self.event_time_ms = event_ms
            if snapshot:
                out += sync.on_snapshot(number, bids, asks, event_ms)
            else:
                out += sync.on_update(number, number, bids, asks, event_ms)
        return out

    def _levels_of(self, event: L2Event) -> tuple[list[PriceAmount], list[PriceAmount], int | None]:
        bids: list[tuple[str, str]] = []
        asks: list[tuple[str, str]] = []
        last_time = ""
        for level in event.updates:
            side = level.side
            if side == BID:
                bids.append((level.price_level, level.new_quantity))
            elif side == OFFER:
                asks.append((level.price_level, level.new_quantity))
            else:
                raise DecodeError(f"side {side[:20]!r}")
            if level.event_time:
                last_time = level.event_time
        parse = self._levels.snapshot if event.type == "snapshot" else self._levels
        event_ms = self._times(last_time) if last_time else None
        return parse(bids), parse(asks), event_ms


def symbol_of(instrument: str) -> str:
    """``ETH-BTC`` (or the compact ``ethbtc``) -> Coinbase's product id ``ETH-BTC``: the
    canonical form is theirs. ``ConfigError`` for a name that does not split."""
    return canonical(instrument)


SPEC: Final = VenueSpec(
    name=NAME,
    create=CoinbaseProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.coinbase_venue:SIM_VENUE",
    url_hosts=("coinbase",),
)
