"""Simulated OKX (v5 public WebSocket): ``books`` channel, ``seqId`` chain, checksums, ping.

Sans-I/O. Client requests are decoded with the shared Structs of
``dragonflybot.venues.okx``; replies and data are written by ``sim.okx_wire``, whose
checksum is computed by the very function the client verifies with. As on the real
venue:

* ``{"op":"subscribe","args":[{"channel":"books","instId":"ETH-BTC"}]}`` answers with the
  ``subscribe`` event and the instrument's snapshot (``prevSeqId`` -1, ``seqId`` the
  current one), then ``update`` messages with absolute sizes, each with ``prevSeqId``
  equal to the ``seqId`` before it, and the signed CRC32 of the best 25 levels;
* the text ``ping`` is answered with ``pong`` (the client's keepalive, OKX closes a
  connection silent for 30 s).

A dropped update (the ``gap_every`` fault) therefore breaks the chain the client checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import msgspec

from dragonflybot.errors import ConfigError
from dragonflybot.sim import okx_wire
from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.plugin import BROADCAST, Renderer, ReplayFrame, SimVenue
from dragonflybot.sim.protocol import Key, Reaction, Rejection, Session, VenueProtocol
from dragonflybot.venues import okx

WS_PATH: Final = "/ws/v5/public"
BAD_SIZE: Final = "424242"
"""The size ``corrupt_book`` writes: a value no simulated book holds, easy to look for."""
SNAPSHOT_LEVELS: Final = 400
"""Levels per side of a ``books`` snapshot."""
_SIZE: Final = re.compile(r'\[\["([^"]+)","[^"]+"')


def channel_name(inst_id: str) -> str:
    return f"{okx.CHANNEL}:{inst_id}"


def inst_id_of(spec: InstrumentSpec) -> str | None:
    """The ``instId`` of a simulated instrument (the feed's own mapping), or ``None`` for an
    invented name without a known quote asset."""
    try:
        return okx.symbol_of(spec.instrument.name if spec.instrument else spec.name)
    except ConfigError:
        return None


def book_channels(spec: InstrumentSpec) -> dict[str, str]:
    inst_id = inst_id_of(spec)
    return {} if inst_id is None else {channel_name(inst_id): spec.name}


class OkxServerProtocol(VenueProtocol):
    """OKX's control protocol; the renderer it is given answers with books."""

    name = "okx"

    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        path = target.partition("?")[0]
        if path not in (WS_PATH, "", "/"):
            return Rejection(404, f"no such endpoint: {path}")
        return Session(), []

    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        if text == okx.PING:
            return Reaction([okx_wire.pong()], [], [])
        try:
            request = msgspec.json.decode(text, type=okx.Request)
        except msgspec.DecodeError:
            return Reaction(
                [okx_wire.error_reply("60012", f"Invalid request: {text[:60]}")], [], []
            )
        if request.op not in ("subscribe", "unsubscribe"):
            return Reaction(
                [okx_wire.error_reply("60012", f"Invalid op: {request.op[:40]}")], [], []
            )
        replies: list[str] = []
        keys: list[Key] = []
        for arg in request.args:
            name = channel_name(arg.instId or "")
            if arg.channel != okx.CHANNEL or name not in self.catalog:
                error = f"Wrong URL or channel:{arg.channel},instId:{arg.instId} doesn't exist."
                return Reaction([okx_wire.error_reply("60018", error)], [], [])
            inst_id = arg.instId or ""
            key = (name, "")
            keys.append(key)
            if request.op == "unsubscribe":
                replies.append(okx_wire.unsubscribe_ack(inst_id))
                continue
            if faults.reject_subscriptions:
                return Reaction([okx_wire.error_reply("60018", "Subscription refused")], [], [])
            # The snapshot follows the ack: the model server sends it as the subscription
            # takes effect (``SIM_VENUE.subscribed``); a replay plays the recorded one.
            replies.append(okx_wire.subscribe_ack(inst_id))
        if request.op == "unsubscribe":
            return Reaction(replies, [], keys)
        return Reaction(replies, keys, [])

    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        return payload, -1

    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        return (
            '{"event":"notice","code":"64008","msg":"The connection will soon be closed for '
            'a service upgrade. Please reconnect.","connId":"a4d3ae55"}'
        )

    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        inst_id = key[0].partition(":")[2]
        return (
            f'{{"arg":{{"channel":"books","instId":"{inst_id}"}},"action":"update",'
            '"data":[{"asks":"none","bids":[[1,2]],"checksum":"x"}]}'
        )

    def corrupt_book(self, frame: Outgoing) -> str | None:
        text, count = _SIZE.subn(rf'[["\1","{BAD_SIZE}"', frame.text, count=1)
        return text if count else None


class OkxRenderer:
    """Each subscribed instrument as OKX publishes it (``okx_wire.OkxBookWire``)."""

    def __init__(self, markets: Mapping[str, VenueMarket]) -> None:
        self._wires: dict[str, okx_wire.OkxBookWire] = {}

    def snapshot(self, key: Key, market: VenueMarket) -> Outgoing:
        """The instrument's book now at the current ``seqId`` (a new subscriber's first
        message); a rendering out of step with the market (nobody was subscribed) is
        reloaded from it first, which starts a new sequence."""
        wire = self._wire(key[0])
        time_ms = market.time_us // 1000
        bids = market.book.top_bids(SNAPSHOT_LEVELS)
        asks = market.book.top_asks(SNAPSHOT_LEVELS)
        if wire.top_bids(SNAPSHOT_LEVELS) != list(bids) or wire.top_asks(SNAPSHOT_LEVELS) != list(
            asks
        ):
            text = wire.snapshot(bids, asks, ts_ms=time_ms)
        else:
            text = wire.current_snapshot(ts_ms=time_ms)
        return Outgoing(text, FrameKind.SNAPSHOT, -1, market.spec.name, key[0])

    def _wire(self, name: str) -> okx_wire.OkxBookWire:
        wire = self._wires.get(name)
        if wire is None:
            wire = okx_wire.OkxBookWire(name.partition(":")[2])
            self._wires[name] = wire
        return wire

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing:
        text = self._wire(key[0]).update(update.bids, update.asks, ts_ms=update.time_us // 1000)
        return Outgoing(text, FrameKind.DIFF, -1, market.spec.name, key[0], update)

    def rest(self, method: str, target: str) -> HttpResponse:
        return HttpResponse.json(404, {"code": "50000", "msg": "Not found"})


# --- replay: recorded OKX traffic -------------------------------------------------------------


class _Probe(msgspec.Struct):
    event: str | None = None
    arg: okx.Arg | None = None
    action: str | None = None


def replay_frame(record: CaptureRecord, text: str) -> ReplayFrame | None:
    """Book data by instrument; event replies: ``None``; anything else to everyone."""
    if text == okx.PONG:
        return None
    try:
        probe = msgspec.json.decode(text, type=_Probe)
    except msgspec.DecodeError:
        return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
    if probe.event is not None:
        if probe.event == "notice":
            return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)
        return None
    arg = probe.arg
    if arg is not None and arg.channel == okx.CHANNEL and arg.instId:
        kind = FrameKind.SNAPSHOT if probe.action == "snapshot" else FrameKind.DIFF
        return ReplayFrame(channel_name(arg.instId), record.time_ns, text, "", text, kind)
    return ReplayFrame(BROADCAST, record.time_ns, text, "", text, FrameKind.CONTROL)


def requested(payload: bytes) -> list[str]:
    try:
        request = msgspec.json.decode(payload, type=okx.Request)
    except msgspec.DecodeError:
        return []
    if request.op != "subscribe":
        return []
    return [channel_name(a.instId) for a in request.args if a.channel == okx.CHANNEL and a.instId]


def owns_path(path: str) -> bool:
    return path == WS_PATH


def _renderer(protocol: VenueProtocol, markets: Mapping[str, VenueMarket]) -> Renderer:
    return OkxRenderer(markets)


def _subscribed(renderer: Renderer, key: Key, market: VenueMarket) -> Outgoing:
    assert isinstance(renderer, OkxRenderer)
    return renderer.snapshot(key, market)


SIM_VENUE: Final = SimVenue(
    protocol=OkxServerProtocol,
    ws_path=WS_PATH,
    streams=book_channels,
    renderer=_renderer,
    replay_frame=replay_frame,
    requested=requested,
    owns_path=owns_path,
    subscribed=_subscribed,
)
