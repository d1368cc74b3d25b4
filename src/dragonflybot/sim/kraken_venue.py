"""Simulated Kraken (WebSocket v2): ``instrument`` and ``book`` channels, ping, checksums.

Sans-I/O. Client requests are decoded with the shared Structs of
``dragonflybot.venues.kraken``; replies and data are written by ``sim.kraken_wire``,
whose checksum is computed by the very function the client verifies with. As on the
real venue:

* subscribing to ``instrument`` answers with the pairs and their precisions;
* subscribing to ``book`` at a depth (10, 25, 100, 500, 1000) answers with the ack and
  the pair's snapshot cut to that depth, then updates carrying only what changed
  within that depth (a level pushed out gets no delete; a level coming into scope is
  sent), each with the CRC32 of the top 10 at the pair's precisions; an update that
  changes nothing within the depth is not sent;
* ``{"method":"ping"}`` is answered with ``pong`` (the client's liveness probe).

A subscription is a ``Key`` ``("book:ETH/BTC", "<depth>")``: one rendering per pair and
depth, shared by every connection on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

from dragonflybot.core.book import PriceAmount
from dragonflybot.core.fixed import SCALE, Fixed
from dragonflybot.errors import ConfigError
from dragonflybot.sim import kraken_wire
from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.plugin import BROADCAST, Renderer, ReplayFrame, SimVenue
from dragonflybot.sim.protocol import Key, Reaction, Rejection, Session, VenueProtocol
from dragonflybot.venues import kraken

WS_PATH: Final = "/v2"
BAD_QTY: Final = "424242"
"""The amount ``corrupt_book`` writes: a value no simulated book holds, easy to look for."""
_QTY: Final = re.compile(r'"qty":[0-9.eE+-]+')


def decimals(unit: Fixed) -> int:
    """Decimals a grid step needs (``0.001`` -> 3): the pair's precision on the venue."""
    for places in range(SCALE + 1):
        if unit % 10 ** (SCALE - places) == 0:
            return places
    return SCALE


def book_name(symbol: str) -> str:
    return f"{kraken.BOOK}:{symbol}"


def pair_of(spec: InstrumentSpec) -> str | None:
    """The v2 symbol of a simulated instrument (the feed's own mapping), or ``None`` for an
    invented name without a known quote asset (Kraken lists no such pair)."""
    try:
        return kraken.symbol_of(spec.instrument.name if spec.instrument else spec.name)
    except ConfigError:
        return None


def book_channels(spec: InstrumentSpec) -> dict[str, str]:
    """The ``book`` channel of ``spec``'s pair -> the instrument name."""
    symbol = pair_of(spec)
    return {} if symbol is None else {book_name(symbol): spec.name}


class _Params(msgspec.Struct):
    channel: str
    symbol: list[str] = []
    depth: int = kraken.DEFAULT_DEPTH


class _Request(msgspec.Struct):
    method: str
    params: _Params | None = None
    req_id: int | None = None


class KrakenServerProtocol(VenueProtocol):
    """Kraken v2's control protocol; the renderer it is given answers with books."""

    name = "kraken"

    def __init__(self, catalog: Mapping[str, str]) -> None:
        super().__init__(catalog)
        self.renderer: KrakenRenderer | None = None
        """Set by the model's renderer: the ``instrument`` channel answers with its pairs,
        and a book key carries the subscribed depth (a replay has no renderer: it plays
        the recorded conversation, of one depth)."""

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        path = target.partition("?")[0]
        if path not in (WS_PATH, "", "/"):
            return Rejection(404, f"no such endpoint: {path}")
        return Session(), []

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        try:
            request = msgspec.json.decode(text, type=_Request)
        except msgspec.DecodeError as exc:
            return Reaction([kraken_wire.error_reply("unknown", 0, f"EGeneral:{exc}")], [], [])
        req_id = request.req_id or 0
        if request.method == "ping":
            return Reaction([kraken_wire.pong(request.req_id)], [], [])
        params = request.params
        if request.method not in ("subscribe", "unsubscribe") or params is None:
            error = f"EGeneral:Unsupported method {request.method[:40]!r}"
            return Reaction([kraken_wire.error_reply(request.method, req_id, error)], [], [])
        if params.channel == kraken.INSTRUMENT:
            return self._instrument(req_id, request.method)
        if params.channel != kraken.BOOK:
            error = f"EGeneral:Unsupported channel {params.channel[:40]!r}"
            return Reaction([kraken_wire.error_reply(request.method, req_id, error)], [], [])
        return self._book(session, request.method, params, req_id, faults)

    def _instrument(self, req_id: int, method: str) -> Reaction:
        if method == "unsubscribe":
            return Reaction([kraken_wire.unsubscribe_ack(req_id, "", 0)], [], [])
        replies = [kraken_wire.subscribe_ack(req_id, kraken.INSTRUMENT)]
        renderer = self.renderer
        if renderer is not None:
            replies.append(kraken_wire.instrument_snapshot(renderer.pairs()))
            return Reaction(replies, [], [])
        # A replay plays the recorded conversation: the instrument data on its channel,
        # and the book the recorder subscribed to right after it (a client that waited for
        # the precisions to subscribe would miss the recorded snapshot otherwise).
        keys: list[Key] = [(name, "") for name in self.catalog]
        return Reaction(replies, keys, [])

    def _book(
        self, session: Session, method: str, params: _Params, req_id: int, faults: Faults
    ) -> Reaction:
        if params.depth not in kraken.DEPTHS:
            error = f"EGeneral:Invalid arguments:depth must be one of {list(kraken.DEPTHS)}"
            return Reaction([kraken_wire.error_reply(method, req_id, error)], [], [])
        unknown = [s for s in params.symbol if book_name(s) not in self.catalog]
        if unknown or not params.symbol:
            error = f"EGeneral:Currency pair not supported {(unknown or ['none'])[0][:40]}"
            return Reaction([kraken_wire.error_reply(method, req_id, error)], [], [])
        replies: list[str] = []
        keys: list[Key] = []
        if method == "unsubscribe":
            for symbol in params.symbol:
                keys += [k for k in session.keys if k[0] == book_name(symbol)]
                replies.append(kraken_wire.unsubscribe_ack(req_id, symbol, params.depth))
            return Reaction(replies, [], keys)
        if faults.reject_subscriptions:
            error = "EGeneral:Subscription refused"
            return Reaction([kraken_wire.error_reply(method, req_id, error)], [], [])
        renderer = self.renderer
        for symbol in params.symbol:
            # A replay's recorded frames are of one depth, whatever the client asks.
            key = (book_name(symbol), str(params.depth) if renderer is not None else "")
            keys.append(key)
            # The snapshot follows the acks: the model server sends it as the subscription
            # takes effect (``SIM_VENUE.subscribed``); a replay plays the recorded one.
            replies.append(kraken_wire.subscribe_ack(req_id, kraken.BOOK, symbol, params.depth))
        return Reaction(replies, keys, [])

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        # Book messages are not wrapped (a recorded one is the whole frame, any depth).
        return payload, -1

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        # v2 announces maintenance on the status channel; the close follows.
        return (
            '{"channel":"status","type":"update","data":[{"version":"2.0.0",'
            '"system":"maintenance","api_version":"v2","connection_id":1}]}'
        )

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        return '{"channel":"book","type":"update","data":[{"symbol":1,"bids":"x","checksum":-1}]}'

    def corrupt_book(self, frame: Outgoing) -> str | None:
        text, count = _QTY.subn(f'"qty":{BAD_QTY}', frame.text, count=1)
        return text if count else None


class KrakenRenderer:
    """Each subscribed pair and depth as Kraken publishes it (``kraken_wire.KrakenBookWire``)."""

    def __init__(self, protocol: KrakenServerProtocol, markets: Mapping[str, VenueMarket]) -> None:
        self._markets = {
            book_name(symbol): m
            for m in markets.values()
            if (symbol := pair_of(m.spec)) is not None
        }
        self._precisions = {
            name: (decimals(m.spec.tick), decimals(m.spec.lot)) for name, m in self._markets.items()
        }
        self._wires: dict[Key, kraken_wire.KrakenBookWire] = {}
        protocol.renderer = self

    def pairs(self) -> list[tuple[str, int, int]]:
        """``(symbol, price_precision, qty_precision)`` of every pair served."""
        return [(name.partition(":")[2], *p) for name, p in self._precisions.items()]

    def snapshot(self, key: Key, market: VenueMarket) -> Outgoing:
        """The pair's book now, cut to the key's depth (a new subscriber's first message).

        Also resets the rendering to the market: a key with subscribers is in step with
        it already (every update is rendered), one without them was not rendered."""
        wire = self._wire(key)
        depth = wire.depth
        text = wire.snapshot(
            market.book.top_bids(depth), market.book.top_asks(depth), time_ms=market.time_us // 1000
        )
        return Outgoing(text, FrameKind.SNAPSHOT, -1, market.spec.name, key[0])

    def _wire(self, key: Key) -> kraken_wire.KrakenBookWire:
        wire = self._wires.get(key)
        if wire is None:
            price_precision, qty_precision = self._precisions[key[0]]
            wire = kraken_wire.KrakenBookWire(
                key[0].partition(":")[2],
                depth=int(key[1]),
                price_precision=price_precision,
                qty_precision=qty_precision,
            )
            self._wires[key] = wire
        return wire

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing | None:
        wire = self._wire(key)
        depth = wire.depth
        bids = _changes(wire.bids, market.book.top_bids(depth))
        asks = _changes(wire.asks, market.book.top_asks(depth))
        if not bids and not asks:
            return None
        text = wire.update(bids, asks, time_ms=update.time_us // 1000)
        return Outgoing(text, FrameKind.DIFF, -1, market.spec.name, key[0], update)

    def rest(self, method: str, target: str) -> HttpResponse:
        return HttpResponse.json(404, {"error": ["EGeneral:Unknown method"]})


def _changes(held: dict[Fixed, Fixed], top: tuple[tuple[Fixed, Fixed], ...]) -> list[PriceAmount]:
    """What turns ``held`` into ``top``: removals first, then new and changed levels."""
    now = dict(top)
    out: list[PriceAmount] = [(price, 0) for price in held if price not in now]
    out += [(price, amount) for price, amount in top if held.get(price) != amount]
    return out


# --- replay: recorded Kraken v2 traffic -----------------------------------------------------


class _Probe(msgspec.Struct):
    channel: str | None = None
    type: str | None = None
    method: str | None = None
    data: msgspec.Raw = msgspec.Raw()


class _Symbol(msgspec.Struct):
    symbol: str = ""


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """Book data by pair, instrument data on its channel; method replies: ``None``."""
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.method is not None:
        return None  # acks, pongs: answered live
    if probe.channel == kraken.BOOK:
        try:
            data = msgspec.json.decode(bytes(probe.data), type=list[_Symbol])
        except msgspec.DecodeError:
            data = []
        if data and data[0].symbol:
            kind = FrameKind.SNAPSHOT if probe.type == "snapshot" else FrameKind.DIFF
            return ReplayFrame(book_name(data[0].symbol), record.time_ns, text, "", text, kind)
    if probe.channel == kraken.INSTRUMENT:
        return ReplayFrame(kraken.INSTRUMENT, record.time_ns, text, "", text, FrameKind.CONTROL)
    return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)


def requested(payload: bytes) -> list[str]:
    """The book channels a recorded subscribe asked for."""
    try:
        request = msgspec.json.decode(payload, type=_Request)
    except msgspec.DecodeError:
        return []
    params = request.params
    if request.method != "subscribe" or params is None:
        return []
    if params.channel == kraken.INSTRUMENT:
        return [kraken.INSTRUMENT]
    return [book_name(symbol) for symbol in params.symbol] if params.channel == kraken.BOOK else []


def owns_path(path: str) -> bool:
    return path == WS_PATH


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    assert isinstance(protocol, KrakenServerProtocol)
    return KrakenRenderer(protocol, markets)


def _subscribed(renderer: Renderer, key: Key, market: VenueMarket) -> Outgoing:
    assert isinstance(renderer, KrakenRenderer)
    return renderer.snapshot(key, market)


SIM_VENUE: Final = SimVenue(
    protocol=KrakenServerProtocol,
    ws_path=WS_PATH,
    streams=book_channels,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    owns_path=owns_path,
    subscribed=_subscribed,
)
