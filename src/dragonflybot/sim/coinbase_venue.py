"""Simulated Coinbase Advanced Trade: ``level2`` and ``heartbeats`` channels, sans-I/O.

Client requests are decoded with the shared Structs of ``dragonflybot.venues.coinbase``.
A ``level2`` subscription is acknowledged (``subscriptions``) and answered with the
product's whole book (``l2_data`` ``snapshot``), then every market update is an
``update`` event. Every message of a connection carries the connection's next
``sequence_num``, written when the frame is sent (``number``): frames are rendered once
for every subscriber, and a frame a gap fault omits still takes its number, so the
client sees the gap exactly as it would on the real venue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import msgspec

from dragonflybot.core.book import Side
from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.plugin import BROADCAST, Renderer, ReplayFrame, SimVenue
from dragonflybot.sim.protocol import Key, Reaction, Rejection, Session, VenueProtocol
from dragonflybot.sim.wire import LevelFormatter
from dragonflybot.venues.coinbase import (
    HEARTBEATS,
    L2_DATA,
    LEVEL2,
    SUBSCRIPTIONS,
    Request,
    symbol_of,
)

UNNUMBERED: Final = ',"sequence_num":-1}'
"""How a rendered frame ends until ``number`` gives it its connection's number."""
_MAX_PRODUCTS: Final = 1024


class CoinbaseSession(Session):
    __slots__ = ("heartbeat_counter", "heartbeats", "next_sequence")

    def __init__(self) -> None:
        super().__init__()
        self.next_sequence = 0
        self.heartbeats: dict[str, None] = {}
        """Products subscribed on the ``heartbeats`` channel."""
        self.heartbeat_counter = 0


def products(spec: InstrumentSpec) -> dict[str, str]:
    """The product id served for ``spec`` -> the instrument name."""
    if spec.instrument is None:
        return {}  # a name that does not split has no Coinbase product id
    return {symbol_of(spec.instrument.name): spec.name}  # the feed's own mapping


def rfc3339(time_us: int) -> str:
    """Microseconds since the epoch as Coinbase prints times."""
    seconds, micros = divmod(time_us, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{micros:06d}Z"


def _envelope(channel: str, time_us: int, events: str) -> tuple[str, int]:
    """A message with its ``sequence_num`` still to be written; the index where a send
    stamp may go (before the number, so numbering never moves it)."""
    head = (
        f'{{"channel":"{channel}","client_id":"","timestamp":"{rfc3339(time_us)}","events":{events}'
    )
    return head + UNNUMBERED, len(head)


class CoinbaseProtocol(VenueProtocol):
    name = "coinbase"
    numbers_frames = True

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        path = urlsplit(target).path
        if path not in ("", "/"):
            return Rejection(404, f"no such endpoint: {path}")
        return CoinbaseSession(), []

    def number(self, session: Session, frame: Outgoing) -> Outgoing:
        text = frame.text
        if not text.endswith(UNNUMBERED):
            return frame  # errors carry no number
        assert isinstance(session, CoinbaseSession)
        number = session.next_sequence
        session.next_sequence = number + 1
        head = text[: -len(UNNUMBERED)]
        # A send stamp goes before the number (a replayed frame's stamp index points at
        # its closing brace, which the number moves).
        stamp_at = min(frame.stamp_at, len(head))
        return frame._replace(text=f'{head},"sequence_num":{number}}}', stamp_at=stamp_at)

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        assert isinstance(session, CoinbaseSession)
        try:
            request = msgspec.json.decode(text, type=Request)
        except msgspec.DecodeError:
            return _error("Failed to parse request")
        if request.type not in ("subscribe", "unsubscribe"):
            return _error(f"unknown message type {request.type[:40]}")
        unknown = [p for p in request.product_ids if p not in self.catalog]
        if unknown or not request.product_ids:
            return _error(f"Failed to subscribe: unknown product ids {unknown[:5]}")
        keys = [(p, LEVEL2) for p in request.product_ids]
        subscribe: list[Key] = []
        unsubscribe: list[Key] = []
        if request.channel == HEARTBEATS:
            for product in request.product_ids:
                if request.type == "subscribe":
                    session.heartbeats[product] = None
                else:
                    session.heartbeats.pop(product, None)
        elif request.channel == LEVEL2:
            if request.type == "unsubscribe":
                unsubscribe = keys
            elif faults.reject_subscriptions:
                return _error("Failed to subscribe: subscription refused")
            else:
                subscribe = keys
        else:
            return _error(f"Failed to subscribe: unknown channel {request.channel[:40]}")
        level2 = [k[0] for k in session.keys if k not in unsubscribe]
        level2 += [k[0] for k in subscribe if k not in session.keys]
        if len(level2) > _MAX_PRODUCTS:
            return _error("Failed to subscribe: too many products")
        ack = {LEVEL2: level2, HEARTBEATS: list(session.heartbeats)}
        events = msgspec.json.encode([{"subscriptions": {k: v for k, v in ack.items() if v}}])
        reply, _ = _envelope(SUBSCRIPTIONS, 0, events.decode())
        return Reaction([reply], subscribe, unsubscribe)

    def heartbeat(self, session: Session, time_ms: int) -> list[str]:
        assert isinstance(session, CoinbaseSession)
        if not session.heartbeats:
            return []
        session.heartbeat_counter += 1
        now = rfc3339(time_ms * 1000)
        events = f'[{{"current_time":"{now}","heartbeat_counter":{session.heartbeat_counter}}}]'
        return [_envelope(HEARTBEATS, time_ms * 1000, events)[0]]

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        # ``payload`` is the ``events`` list of an ``l2_data`` message.
        return _envelope(L2_DATA, 0, payload)

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        # Coinbase has no "please reconnect" message: it closes the connection.
        return '{"type":"error","message":"connection closing for maintenance"}'

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        return (
            '{"channel":"l2_data","client_id":"","timestamp":7,"sequence_num":"x",'
            f'"events":[{{"type":"update","product_id":"{key[0]}","updates":{{"side":1}}}}]}}'
        )


def _error(message: str) -> Reaction:
    text = msgspec.json.encode({"type": "error", "message": message}).decode()
    return Reaction([text], [], [])


class CoinbaseRenderer:
    """Renders market updates as ``l2_data`` messages (no REST: the book is on the stream)."""

    def __init__(self, protocol: CoinbaseProtocol, markets: Mapping[str, VenueMarket]) -> None:
        self._protocol = protocol
        self._products = {
            m.spec.name: product for m in markets.values() for product in products(m.spec)
        }
        self._fmt = {m.spec.name: LevelFormatter(m.spec.price_decimals) for m in markets.values()}

    def _events(self, kind: str, market: VenueMarket, bids: Side, asks: Side, time_us: int) -> str:
        fmt = self._fmt[market.spec.name]
        price, amount = fmt.price, fmt.amount
        when = rfc3339(time_us)
        updates = [
            f'{{"side":"bid","event_time":"{when}","price_level":"{price(p)}",'
            f'"new_quantity":"{amount(a)}"}}'
            for p, a in bids
        ]
        updates += [
            f'{{"side":"offer","event_time":"{when}","price_level":"{price(p)}",'
            f'"new_quantity":"{amount(a)}"}}'
            for p, a in asks
        ]
        product = self._products[market.spec.name]
        return f'[{{"type":"{kind}","product_id":"{product}","updates":[{",".join(updates)}]}}]'

    def _frame(
        self,
        kind: str,
        key: Key,
        market: VenueMarket,
        bids: Side,
        asks: Side,
        update: Update | None,
    ) -> Outgoing:
        time_us = update.time_us if update is not None else market.time_us
        events = self._events(kind, market, bids, asks, time_us)
        text, stamp_at = _envelope(L2_DATA, time_us, events)
        frame_kind = FrameKind.SNAPSHOT if kind == "snapshot" else FrameKind.DIFF
        return Outgoing(text, frame_kind, stamp_at, market.spec.name, key[0], update)

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        return self._frame("update", key, market, update.bids, update.asks, update)

    def snapshot(self, key: Key, market: VenueMarket) -> Outgoing:
        """The product's whole book, sent right after a ``level2`` subscription."""
        book = market.book
        depth = max(book.depth)
        return self._frame(
            "snapshot", key, market, book.top_bids(depth), book.top_asks(depth), None
        )

    def rest(self, method: str, target: str) -> HttpResponse:
        return HttpResponse.json(404, {"error": "NOT_FOUND", "message": "no REST here"})


# --- replay: recorded Coinbase Advanced Trade traffic -------------------------------------


class _Event(msgspec.Struct):
    type: str = ""
    product_id: str = ""


class _Probe(msgspec.Struct):
    channel: str = ""
    type: str = ""
    events: list[_Event] = []


_SEQUENCE_NUM: Final = re.compile(r',"sequence_num":-?\d+|"sequence_num":-?\d+,')


def renumbered(text: str) -> str:
    """A recorded message with its ``sequence_num`` left for the replaying connection to
    write: the numbers are per connection, and a replay's connection (whose acks are
    answered live) numbers its messages from its own start."""
    stripped = _SEQUENCE_NUM.sub("", text, count=1)
    return stripped[:-1] + UNNUMBERED if stripped.endswith("}") else text


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """A recorded frame classified by product; acks and errors: ``None``."""
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.channel == SUBSCRIPTIONS or probe.type == "error":
        return None  # answered live
    text = renumbered(text)
    if probe.channel == L2_DATA and probe.events and probe.events[0].product_id:
        event = probe.events[0]
        kind = FrameKind.SNAPSHOT if event.type == "snapshot" else FrameKind.DIFF
        return ReplayFrame(event.product_id, record.time_ns, text, LEVEL2, text, kind)
    return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)


def requested(payload: bytes) -> list[str]:
    """Products a recorded ``level2`` subscribe asked for."""
    try:
        request = msgspec.json.decode(payload, type=Request)
    except msgspec.DecodeError:
        return []
    if request.type != "subscribe" or request.channel != LEVEL2:
        return []
    return request.product_ids


def owns_path(path: str) -> bool:
    return path in ("", "/")


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    assert isinstance(protocol, CoinbaseProtocol)
    return CoinbaseRenderer(protocol, markets)


def _subscribed(renderer: Renderer, key: Key, market: VenueMarket) -> Outgoing:
    assert isinstance(renderer, CoinbaseRenderer)
    return renderer.snapshot(key, market)


def _heartbeat(protocol: VenueProtocol, session: Session, time_ms: int) -> list[str]:
    assert isinstance(protocol, CoinbaseProtocol)
    return protocol.heartbeat(session, time_ms)


SIM_VENUE: Final = SimVenue(
    protocol=CoinbaseProtocol,
    ws_path="",
    streams=products,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    owns_path=owns_path,
    subscribed=_subscribed,
    heartbeat=_heartbeat,
)
