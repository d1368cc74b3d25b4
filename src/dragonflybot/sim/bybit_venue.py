"""Simulated Bybit v5 public spot: ``orderbook.{depth}.{symbol}`` topics, ``op`` requests.

Client requests are decoded with the shared Structs of ``dragonflybot.venues.bybit``. A
subscription is acknowledged and answered with a ``snapshot`` of the topic's top
``depth`` levels; each market update is then a ``delta`` of that top ``depth``: the
levels that changed in it, the ones that entered it (a level moving up when a better one
went) and the ones that left it (size ``"0"``), so a client truncating its book to the
depth holds exactly the venue's top. ``u`` advances by one per delta of a topic; under
``Faults.restart_every`` an update is published as a service-restart snapshot (``u`` back
to 1), which replaces the client's book.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import msgspec

from dragonflybot.core.book import Level, Side
from dragonflybot.core.fixed import Fixed
from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.plugin import BROADCAST, Renderer, ReplayFrame, SimVenue
from dragonflybot.sim.protocol import Key, Reaction, Rejection, Session, VenueProtocol
from dragonflybot.sim.wire import LevelFormatter
from dragonflybot.venues.bybit import DEPTHS, Request, symbol_of, topic_of

WS_PATH: Final = "/v5/public/spot"
_MAX_ARGS: Final = 10
"""Spot: at most 10 args per subscribe request."""
_MAX_TOPICS: Final = 1024
CONN_ID: Final = "d0c5e2f4-sim"


def topics(spec: InstrumentSpec) -> dict[str, str]:
    """Every order-book topic served for ``spec`` -> the instrument name."""
    name = spec.instrument.name if spec.instrument is not None else spec.name
    symbol = symbol_of(name)  # the feed's own mapping: one definition
    return {topic_of(depth, symbol): spec.name for depth in DEPTHS}


def depth_of(topic: str) -> int:
    return int(topic.split(".")[1])


def _reply(op: str, success: bool, message: str, req_id: str) -> str:
    return msgspec.json.encode(
        {"success": success, "ret_msg": message, "conn_id": CONN_ID, "req_id": req_id, "op": op}
    ).decode()


class BybitProtocol(VenueProtocol):
    name = "bybit"

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        path = urlsplit(target).path
        if path.rstrip("/") != WS_PATH:
            return Rejection(404, f"no such endpoint: {path}")
        return Session(), []

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        try:
            request = msgspec.json.decode(text, type=Request)
        except msgspec.DecodeError:
            return Reaction([_reply("", False, "Invalid request: bad JSON", "")], [], [])
        op, req_id = request.op, request.req_id[:36]
        if op == "ping":
            return Reaction([_reply("ping", True, "pong", req_id)], [], [])
        if op not in ("subscribe", "unsubscribe"):
            return Reaction([_reply(op[:20], False, f"Invalid op {op[:20]}", req_id)], [], [])
        if not request.args or len(request.args) > _MAX_ARGS:
            return Reaction([_reply(op, False, "Invalid args count", req_id)], [], [])
        unknown = [topic for topic in request.args if topic not in self.catalog]
        if unknown:
            message = f"Invalid topic: {unknown[0][:60]}"
            return Reaction([_reply(op, False, message, req_id)], [], [])
        keys = [(topic, "") for topic in request.args]
        if op == "unsubscribe":
            return Reaction([_reply(op, True, "", req_id)], [], keys)
        if faults.reject_subscriptions:
            return Reaction([_reply(op, False, "subscription refused", req_id)], [], [])
        if len({*session.keys, *keys}) > _MAX_TOPICS:
            return Reaction([_reply(op, False, "too many topics", req_id)], [], [])
        return Reaction([_reply(op, True, "subscribe", req_id)], keys, [])

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        # ``payload`` is a whole message (topic, type, ts, data, cts).
        return payload, len(payload) - 1

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        # Bybit announces nothing before closing a connection.
        return _reply("", False, "connection closing", "")

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        return (
            f'{{"topic":"{key[0]}","type":"delta","ts":"now",'
            '"data":{"s":1,"b":"none","a":{"1":2},"u":-3,"seq":null},"cts":[]}'
        )


class BybitRenderer:
    """Renders each topic's top ``depth`` as a snapshot on subscription, then deltas."""

    def __init__(self, protocol: BybitProtocol, markets: Mapping[str, VenueMarket]) -> None:
        self._protocol = protocol
        self._symbols = {m.spec.name: symbol_of(_name(m.spec)) for m in markets.values()}
        self._fmt = {m.spec.name: LevelFormatter(m.spec.price_decimals) for m in markets.values()}
        self._u: dict[str, int] = {}
        """Each topic's update id."""
        self._seq = 0
        self._last: dict[str, tuple[dict[Fixed, Fixed], dict[Fixed, Fixed]]] = {}
        """Each topic's top ``depth`` as last published (price -> size per side)."""

    def _message(
        self,
        kind: str,
        topic: str,
        market: VenueMarket,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
        time_us: int,
    ) -> tuple[str, int]:
        self._seq += 1
        ts = time_us // 1000
        payload = msgspec.json.encode(
            {
                "topic": topic,
                "ts": ts,
                "type": kind,
                "data": {
                    "s": self._symbols[market.spec.name],
                    "b": bids,
                    "a": asks,
                    "u": self._u[topic],
                    "seq": self._seq,
                },
                "cts": max(0, ts - 2),
            }
        ).decode()
        return self._protocol.wrap((topic, ""), payload)

    def _snapshot(self, key: Key, market: VenueMarket, update: Update | None) -> Outgoing:
        topic = key[0]
        depth = depth_of(topic)
        book = market.book
        bids, asks = book.top_bids(depth), book.top_asks(depth)
        self._last[topic] = ({p: a for p, a in bids}, {p: a for p, a in asks})
        self._u.setdefault(topic, 1)
        fmt = self._fmt[market.spec.name].levels
        time_us = update.time_us if update is not None else market.time_us
        text, at = self._message("snapshot", topic, market, fmt(bids), fmt(asks), time_us)
        return Outgoing(text, FrameKind.SNAPSHOT, at, market.spec.name, topic, update)

    def snapshot(self, key: Key, market: VenueMarket) -> Outgoing:
        """The topic's top ``depth``, sent right after its subscription."""
        return self._snapshot(key, market, None)

    def restart(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        """A service restart: the topic's update id starts again at 1, with a snapshot."""
        self._u[key[0]] = 1
        return self._snapshot(key, market, update)

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        topic = key[0]
        last = self._last.get(topic)
        if last is None:  # nobody was subscribed when the snapshot would have been made
            return self._snapshot(key, market, update)
        depth = depth_of(topic)
        book = market.book
        bids = _delta(last[0], book.top_bids(depth), reverse=True)
        asks = _delta(last[1], book.top_asks(depth), reverse=False)
        self._u[topic] += 1
        fmt = self._fmt[market.spec.name].levels
        text, at = self._message("delta", topic, market, fmt(bids), fmt(asks), update.time_us)
        return Outgoing(text, FrameKind.DIFF, at, market.spec.name, topic, update)

    def rest(self, method: str, target: str) -> HttpResponse:
        return HttpResponse.json(404, {"retCode": 10001, "retMsg": "not served by the simulator"})


def _delta(last: dict[Fixed, Fixed], top: Side, *, reverse: bool) -> Side:
    """The changes turning ``last`` into ``top`` (removals as size 0), best first;
    ``last`` becomes ``top``."""
    now = {p: a for p, a in top}
    changed = [Level(p, a) for p, a in now.items() if last.get(p) != a]
    changed += [Level(p, 0) for p in last if p not in now]
    changed.sort(key=lambda level: level.price, reverse=reverse)
    last.clear()
    last.update(now)
    return tuple(changed)


def _name(spec: InstrumentSpec) -> str:
    return spec.instrument.name if spec.instrument is not None else spec.name


# --- replay: recorded Bybit v5 traffic --------------------------------------------------


class _Probe(msgspec.Struct):
    topic: str = ""
    type: str = ""
    op: str = ""


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """A recorded frame classified by topic; replies to requests: ``None``."""
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.op:
        return None  # acks and pongs: answered live
    if probe.topic:
        kind = FrameKind.SNAPSHOT if probe.type == "snapshot" else FrameKind.DIFF
        return ReplayFrame(probe.topic, record.time_ns, text, "", text, kind)
    return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)


def requested(payload: bytes) -> list[str]:
    """Topics a recorded subscribe asked for."""
    try:
        request = msgspec.json.decode(payload, type=Request)
    except msgspec.DecodeError:
        return []
    return request.args if request.op == "subscribe" else []


def owns_path(path: str) -> bool:
    return path.startswith("/v5/")


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    assert isinstance(protocol, BybitProtocol)
    return BybitRenderer(protocol, markets)


def _subscribed(renderer: Renderer, key: Key, market: VenueMarket) -> Outgoing:
    assert isinstance(renderer, BybitRenderer)
    return renderer.snapshot(key, market)


def _restart(renderer: Renderer, key: Key, market: VenueMarket, update: Update) -> Outgoing:
    assert isinstance(renderer, BybitRenderer)
    return renderer.restart(key, market, update)


SIM_VENUE: Final = SimVenue(
    protocol=BybitProtocol,
    ws_path=WS_PATH,
    streams=topics,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    owns_path=owns_path,
    subscribed=_subscribed,
    restart=_restart,
)
