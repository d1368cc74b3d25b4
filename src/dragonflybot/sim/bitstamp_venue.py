"""Simulated Bitstamp: ``bts:*`` control events, book channels, REST order book.

Sans-I/O. Client frames are decoded with the shared Structs of
``dragonflybot.venues.bitstamp``; replies are written in the byte form the venue uses
(``{"event":...,"channel":...,"data":...}``, data frames with ``data`` first), so a
recorded ack and a simulated one are the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import msgspec

from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.plugin import BROADCAST, Renderer, ReplayFrame, SimVenue
from dragonflybot.sim.protocol import Key, Reaction, Rejection, Session, VenueProtocol
from dragonflybot.sim.wire import LevelFormatter
from dragonflybot.venues.bitstamp import Request, symbol_of

TOP_LEVELS: Final = 100
"""``order_book_<pair>`` carries the top 100 levels per side."""
_REST_PATH: Final = re.compile(r"/api/v2/order_book/(?P<pair>[a-z0-9]+)/?")
_MAX_CHANNELS: Final = 1024

HEARTBEAT_REPLY: Final = '{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
RECONNECT: Final = '{"event":"bts:request_reconnect","channel":"","data":""}'


class BookPayload(msgspec.Struct):
    """``data`` of a book frame or the REST body, in the venue's key order (the shared
    ``BookData``/``RestOrderBook`` Structs declare only what a feed reads)."""

    timestamp: str
    microtimestamp: str
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


def book_channels(spec: InstrumentSpec) -> dict[str, str]:
    """Every order-book channel served for ``spec`` -> the instrument name."""
    pair = symbol_of(spec.name)  # the feed's own mapping: one definition
    return {f"order_book_{pair}": spec.name, f"diff_order_book_{pair}": spec.name}


def _event(event: str, channel: str, data: str) -> str:
    return f'{{"event":"{event}","channel":"{channel}","data":{data}}}'


def _error(message: str) -> Reaction:
    text = msgspec.json.encode(message).decode()
    return Reaction([_event("bts:error", "", f'{{"code":null,"message":{text}}}')], [], [])


class BitstampProtocol(VenueProtocol):
    name = "bitstamp"

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        path = urlsplit(target).path
        if path not in ("", "/"):
            return Rejection(404, f"no such endpoint: {path}")
        return Session(), []

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        try:
            request = msgspec.json.decode(text, type=Request)
        except msgspec.DecodeError:
            return _error("Incorrect JSON format.")
        if request.event == "bts:heartbeat":
            return Reaction([HEARTBEAT_REPLY], [], [])
        if request.event not in ("bts:subscribe", "bts:unsubscribe"):
            return _error(f"Bad event: {request.event[:40]}")
        channel = request.data.channel if request.data is not None else ""
        if channel not in self.catalog:
            return _error("Bad subscription string.")
        key = (channel, "")
        if request.event == "bts:unsubscribe":
            return Reaction([_event("bts:unsubscription_succeeded", channel, "{}")], [], [key])
        if faults.reject_subscriptions:
            return _error("Subscription refused.")
        if key not in session.keys and len(session.keys) >= _MAX_CHANNELS:
            return _error("Too many subscriptions.")
        return Reaction([_event("bts:subscription_succeeded", channel, "{}")], [key], [])

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        return f'{{"data":{payload},"channel":"{key[0]}","event":"data"}}', 8 + len(payload) - 1

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        return RECONNECT

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        payload = '{"timestamp":1,"microtimestamp":null,"bids":"none","asks":{"1":2}}'
        return self.wrap(key, payload)[0]


class BitstampRenderer:
    """Renders market updates as Bitstamp frames and serves the REST order book."""

    def __init__(self, protocol: BitstampProtocol, markets: Mapping[str, VenueMarket]) -> None:
        self._protocol = protocol
        self._pairs = {symbol_of(m.spec.name): m for m in markets.values()}
        self._fmt = {m.spec.name: LevelFormatter(m.spec.price_decimals) for m in markets.values()}

    def _payload(
        self, market: VenueMarket, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
    ) -> bytes:
        us = market.time_us
        return msgspec.json.encode(BookPayload(str(us // 1_000_000), str(us), bids, asks))

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        fmt = self._fmt[market.spec.name].levels
        us = update.time_us
        if key[0].startswith("diff_"):
            bids, asks, kind = fmt(update.bids), fmt(update.asks), FrameKind.DIFF
        else:
            book = market.book
            bids, asks = fmt(book.top_bids(TOP_LEVELS)), fmt(book.top_asks(TOP_LEVELS))
            kind = FrameKind.SNAPSHOT
        payload = msgspec.json.encode(BookPayload(str(us // 1_000_000), str(us), bids, asks))
        text, stamp_at = self._protocol.wrap(key, payload.decode())
        return Outgoing(text, kind, stamp_at, market.spec.name, key[0], update)

    def rest(self, method: str, target: str) -> HttpResponse:
        match = _REST_PATH.fullmatch(urlsplit(target).path)
        if match is None:
            return HttpResponse.json(404, {"status": "error", "reason": "Not found"})
        if method not in ("GET", "HEAD"):
            return HttpResponse.json(405, {"status": "error", "reason": "Method not allowed"})
        market = self._pairs.get(match["pair"])
        if market is None:
            return HttpResponse.json(404, {"status": "error", "reason": "Unknown currency pair"})
        return HttpResponse(200, self.snapshot(market))

    def snapshot(self, market: VenueMarket) -> bytes:
        """The full book as of the last update's microtimestamp."""
        fmt = self._fmt[market.spec.name].levels
        depth = max(market.book.depth)
        return self._payload(
            market, fmt(market.book.top_bids(depth)), fmt(market.book.top_asks(depth))
        )


# --- replay: recorded Bitstamp traffic --------------------------------------------------


class _Probe(msgspec.Struct):
    event: str
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw()


class _Subscribe(msgspec.Struct):
    event: str = ""
    data: dict[str, str] = {}


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """A recorded frame classified by channel; acks and replies: ``None``."""
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.event.startswith("bts:"):
        if probe.event == "bts:request_reconnect":
            return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
        return None  # acks, errors, heartbeat replies: answered live
    if not probe.channel:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    kind = FrameKind.DIFF if probe.channel.startswith("diff_") else FrameKind.SNAPSHOT
    return ReplayFrame(probe.channel, record.time_ns, text, "", bytes(probe.data).decode(), kind)


def requested(payload: bytes) -> list[str]:
    """The channel a recorded ``bts:subscribe`` asked for."""
    try:
        request = msgspec.json.decode(payload, type=_Subscribe)
    except msgspec.DecodeError:
        return []
    channel = request.data.get("channel", "")
    return [channel] if request.event == "bts:subscribe" and channel else []


def rest_key(url: str) -> str | None:
    """The pair an order-book request asks for."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if len(segments) >= 4 and segments[:3] == ["api", "v2", "order_book"]:
        return segments[3]
    return None


def owns_path(path: str) -> bool:
    return path.startswith("/api/v2/") or path in ("", "/")


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    assert isinstance(protocol, BitstampProtocol)
    return BitstampRenderer(protocol, markets)


SIM_VENUE: Final = SimVenue(
    protocol=BitstampProtocol,
    ws_path="",
    streams=book_channels,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    rest_key=rest_key,
    owns_path=owns_path,
)
