"""Simulated Binance spot: combined/raw streams, SUBSCRIBE control, depth frames, REST depth.

Sans-I/O. Frames are encoded with the shared wire Structs of ``dragonflybot.venues.binance``
(plus two reply Structs declared here so the keys come out in the venue's order), so the
feed and the simulator speak one definition of the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeGuard
from urllib.parse import parse_qs, urlsplit

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
from dragonflybot.venues.binance import DepthSnapshot, DepthUpdate, PartialDepth, symbol_of

COMBINED: Final = "combined"
RAW: Final = "raw"
PARTIAL_LEVELS: Final = (5, 10, 20)
_STREAM: Final = re.compile(r"(?P<sym>[a-z0-9]+)@depth(?P<levels>5|10|20)?(?:@100ms)?")
_ID: Final = re.compile(r"[A-Za-z0-9]{1,36}")
_MAX_STREAMS: Final = 1024


class _Result(msgspec.Struct):
    """``{"result": ..., "id": N}`` in the venue's key order."""

    result: object
    id: int | str | None


class _Error(msgspec.Struct):
    code: int
    msg: str
    id: int | str | None


class _Command(msgspec.Struct):
    method: str
    params: list[object] = []
    id: object = None


_encode = msgspec.json.encode


def depth_streams(spec: InstrumentSpec) -> dict[str, str]:
    """Every depth stream name served for ``spec`` -> the instrument name."""
    sym = symbol_of(spec.name).lower()  # the feed's own mapping: one definition
    names = [f"{sym}@depth", f"{sym}@depth@100ms"]
    for n in PARTIAL_LEVELS:
        names += [f"{sym}@depth{n}", f"{sym}@depth{n}@100ms"]
    return dict.fromkeys(names, spec.name)


def partial_levels(stream: str) -> int | None:
    """N of a ``<sym>@depthN[@100ms]`` stream; None for a diff stream."""
    match = _STREAM.fullmatch(stream)
    if match is None or match["levels"] is None:
        return None
    return int(match["levels"])


class BinanceSession(Session):
    __slots__ = ("combined",)

    def __init__(self, combined: bool) -> None:
        super().__init__()
        self.combined = combined


class BinanceProtocol(VenueProtocol):
    name = "binance"

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        url = urlsplit(target)
        path = url.path.rstrip("/")
        if path == "/stream":
            streams = [s for v in parse_qs(url.query).get("streams", []) for s in v.split("/")]
            form = COMBINED
        elif path == "/ws":
            streams, form = [], RAW
        elif path.startswith("/ws/"):
            streams, form = path[4:].split("/"), RAW
        else:
            return Rejection(404, f"no such endpoint: {url.path}")
        streams = [s for s in streams if s]
        unknown = [s for s in streams if s not in self.catalog]
        if unknown:
            return Rejection(400, f"Invalid request: unknown stream {unknown[0]!r}")
        if len(streams) > _MAX_STREAMS:
            return Rejection(400, f"Invalid request: more than {_MAX_STREAMS} streams")
        return BinanceSession(form == COMBINED), [(s, form) for s in dict.fromkeys(streams)]

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        assert isinstance(session, BinanceSession)
        try:
            raw = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return _reply(_Error(3, "Invalid JSON: could not parse the request", None))
        request_id = raw.get("id") if isinstance(raw, dict) else None
        if not _valid_id(request_id):
            return _reply(
                _Error(2, "Invalid request: 'id' must be an integer or short string", None)
            )
        try:
            command = msgspec.convert(raw, _Command)
        except msgspec.ValidationError as exc:
            return _reply(_Error(2, f"Invalid request: {exc}", request_id))
        form = COMBINED if session.combined else RAW
        method = command.method
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            names = command.params
            bad = next((n for n in names if not isinstance(n, str) or n not in self.catalog), None)
            if bad is not None or not names:
                what = f"unknown stream {bad!r}" if names else "no stream given"
                return _reply(_Error(2, f"Invalid request: {what}", request_id))
            keys = [(str(n), form) for n in names]
            if method == "UNSUBSCRIBE":
                return Reaction([_ok(None, request_id)], [], keys)
            if faults.reject_subscriptions:
                return _reply(_Error(2, "Invalid request: subscription refused", request_id))
            if len(session.keys) + len(keys) > _MAX_STREAMS:
                return _reply(
                    _Error(2, f"Invalid request: over {_MAX_STREAMS} streams", request_id)
                )
            return Reaction([_ok(None, request_id)], keys, [])
        if method == "LIST_SUBSCRIPTIONS":
            return _reply(_Result([k[0] for k in session.keys], request_id))
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return self._property(session, command, request_id)
        return _reply(_Error(2, f"Invalid request: unknown method {method!r}", request_id))

    @staticmethod
    def _property(
        session: BinanceSession, command: _Command, request_id: int | str | None
    ) -> Reaction:
        params = command.params
        if not params or params[0] != "combined":
            return _reply(_Error(0, "Unknown property", request_id))
        if command.method == "GET_PROPERTY":
            return _reply(_Result(session.combined, request_id))
        if len(params) != 2 or not isinstance(params[1], bool):
            return _reply(_Error(1, "Invalid value type: expected Boolean", request_id))
        old = list(session.keys)
        session.combined = params[1]
        form = COMBINED if session.combined else RAW
        return Reaction([_ok(None, request_id)], [(n, form) for n, _ in old], old)

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        if key[1] == COMBINED:
            text = f'{{"stream":"{key[0]}","data":{payload}}}'
            return text, len(text) - 2
        return payload, len(payload) - 1

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        payload = f'{{"e":"serverShutdown","E":{time_ms}}}'
        if isinstance(session, BinanceSession) and session.combined:
            return f'{{"stream":"!serverShutdown","data":{payload}}}'
        return payload

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        if frame.kind is FrameKind.SNAPSHOT:
            payload = '{"lastUpdateId":"latest","bids":{"0.1":"1"},"asks":[[1,2,3]]}'
        else:
            payload = '{"e":"depthUpdate","E":"now","s":["X"],"U":"1","u":null,"b":"none","a":{}}'
        return self.wrap(key, payload)[0]


def _valid_id(value: object) -> TypeGuard[int | str | None]:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value is None or -(2**63) <= value < 2**63
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _ok(result: object, request_id: int | str | None) -> str:
    return _encode(_Result(result, request_id)).decode()


def _reply(message: _Result | _Error) -> Reaction:
    return Reaction([_encode(message).decode()], [], [])


class BinanceRenderer:
    """Renders market updates as Binance frames and serves the REST depth endpoint."""

    def __init__(self, protocol: BinanceProtocol, markets: Mapping[str, VenueMarket]) -> None:
        self._protocol = protocol
        self._markets = markets
        self._symbols = {symbol_of(m.spec.name): m for m in markets.values()}
        self._fmt = LevelFormatter(8)

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        levels = partial_levels(key[0])
        fmt = self._fmt.levels
        if levels is None:
            payload = DepthUpdate(
                e="depthUpdate",
                E=update.time_us // 1000,
                s=symbol_of(market.spec.name),
                U=update.first_id,
                u=update.last_id,
                b=fmt(update.bids),
                a=fmt(update.asks),
            )
            kind = FrameKind.DIFF
        else:
            book = market.book
            payload = PartialDepth(  # type: ignore[assignment]
                lastUpdateId=update.last_id,
                bids=fmt(book.top_bids(levels)),
                asks=fmt(book.top_asks(levels)),
            )
            kind = FrameKind.SNAPSHOT
        text, stamp_at = self._protocol.wrap(key, _encode(payload).decode())
        return Outgoing(text, kind, stamp_at, market.spec.name, key[0], update)

    def rest(self, method: str, target: str) -> HttpResponse:
        url = urlsplit(target)
        if url.path.rstrip("/") != "/api/v3/depth":
            return HttpResponse.json(404, {"code": -1, "msg": "Not found."})
        if method not in ("GET", "HEAD"):
            return HttpResponse.json(405, {"code": -1, "msg": "Method not allowed."})
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        market = self._symbols.get(query.get("symbol", ""))
        if market is None:
            return HttpResponse.json(400, {"code": -1121, "msg": "Invalid symbol."})
        try:
            limit = min(int(query.get("limit", "100")), 5000)
        except ValueError:
            limit = 0
        if limit < 1:
            return HttpResponse.json(400, {"code": -1100, "msg": "Illegal characters in 'limit'."})
        return HttpResponse(200, self.snapshot(market, limit))

    def snapshot(self, market: VenueMarket, limit: int) -> bytes:
        """The book exactly as of ``market.last_id``."""
        book = market.book
        fmt = self._fmt.levels
        return _encode(
            DepthSnapshot(
                lastUpdateId=market.last_id,
                bids=fmt(book.top_bids(limit)),
                asks=fmt(book.top_asks(limit)),
            )
        )


# --- replay: recorded Binance traffic ---------------------------------------------------


class _Probe(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    result: msgspec.Raw = msgspec.Raw()
    code: int | None = None
    e: str | None = None


class _Subscribe(msgspec.Struct):
    method: str = ""
    params: list[str] = []


def _is_diff(stream: str) -> bool:
    name = stream.partition("@")[2]
    return name in ("depth", "depth@100ms")


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """A recorded frame classified by stream; replies to the recorder's requests: ``None``."""
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.stream is not None:
        payload = bytes(probe.data).decode()
        if probe.stream.startswith("!"):
            return ReplayFrame(
                BROADCAST, record.time_ns, text, COMBINED, payload, FrameKind.CONTROL
            )
        kind = FrameKind.DIFF if _is_diff(probe.stream) else FrameKind.SNAPSHOT
        return ReplayFrame(probe.stream, record.time_ns, text, COMBINED, payload, kind)
    if probe.result or probe.code is not None:
        return None  # a reply to the recorder's own request: answered live instead
    if probe.e == "serverShutdown":
        return ReplayFrame(BROADCAST, record.time_ns, text, RAW, text, FrameKind.CONTROL)
    path = urlsplit(record.url).path
    if path.startswith("/ws/"):
        stream = path[4:].split("/")[0]
        kind = FrameKind.DIFF if _is_diff(stream) else FrameKind.SNAPSHOT
        return ReplayFrame(stream, record.time_ns, text, RAW, text, kind)
    return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)


def requested(payload: bytes) -> list[str]:
    """Streams a recorded SUBSCRIBE asked for."""
    try:
        request = msgspec.json.decode(payload, type=_Subscribe)
    except msgspec.DecodeError:
        return []
    return request.params if request.method == "SUBSCRIBE" else []


def rest_key(url: str) -> str | None:
    """The symbol a depth request asks for."""
    symbols = parse_qs(urlsplit(url).query).get("symbol")
    return symbols[-1].upper() if symbols else None


def owns_path(path: str) -> bool:
    return path.startswith(("/stream", "/ws", "/api/v3/"))


def connect_channels(url: str) -> list[str]:
    """Streams a combined-stream URL (``/stream?streams=a/b``) subscribes to."""
    query = parse_qs(urlsplit(url).query)
    return [s for v in query.get("streams", []) for s in v.split("/") if s]


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    assert isinstance(protocol, BinanceProtocol)
    return BinanceRenderer(protocol, markets)


SIM_VENUE: Final = SimVenue(
    protocol=BinanceProtocol,
    ws_path="/stream",
    streams=depth_streams,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    rest_key=rest_key,
    owns_path=owns_path,
    connect_channels=connect_channels,
)
