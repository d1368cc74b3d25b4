"""Binance spot: combined-stream WebSocket, partial-depth and diff-depth books.

Wire schema here is shared by the feed and the simulator, so both sides of every
test speak exactly one definition of the protocol. ``BinanceProtocol`` is the
sans-I/O client side: subscribe, verify the ack, turn frames into book events,
and in depth mode keep the book in step with the REST snapshot by the update-id
rules of the official "how to manage a local order book" procedure.
"""

from __future__ import annotations

from typing import Final

import msgspec

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.book import PriceAmount
from dragonflybot.errors import ConfigError
from dragonflybot.venues.base import (
    BAD_INPUT,
    BookChanged,
    BookReset,
    Dropped,
    Event,
    FetchSnapshot,
    Ignored,
    RawLevels,
    ReconnectNow,
    SubscriptionRejected,
    VenueProtocol,
    join_url,
    require_alnum,
)
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.diff_sync import Diff, DiffSync, SnapshotBody
from dragonflybot.venues.requests import SnapshotRequests
from dragonflybot.venues.spec import VenueSpec

NAME = "binance"
DEFAULT_WS_URL = "wss://stream.binance.com:9443/stream"
DEFAULT_REST_URL = "https://api.binance.com"
DEPTH_PATH = "/api/v3/depth"

PARTIAL_LEVELS: Final = (5, 10, 20)
"""The only top-N sizes of the partial-depth stream."""
DEFAULT_SNAPSHOT_LIMIT: Final = 1000
MAX_SNAPSHOT_LIMIT: Final = 5000
SHUTDOWN_STREAM: Final = "!serverShutdown"


class PartialDepth(msgspec.Struct):
    """``<sym>@depth<N>@100ms`` payload: a whole top-N book (no symbol, no event time)."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class PartialDepthRaw(msgspec.Struct):
    """``PartialDepth`` with each side kept as raw JSON, parsed only as deep as it is read
    (``venues.top_levels``)."""

    lastUpdateId: int
    bids: msgspec.Raw
    asks: msgspec.Raw


class DepthUpdate(msgspec.Struct):
    """``<sym>@depth@100ms`` payload: absolute quantities for changed levels."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: RawLevels
    a: RawLevels


class DepthSnapshot(msgspec.Struct):
    """REST ``GET /api/v3/depth`` body."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class SubscribeRequest(msgspec.Struct):
    method: str
    params: list[str]
    id: int


class CommandResult(msgspec.Struct):
    """Reply to SUBSCRIBE etc.: ``{"result": null, "id": N}``."""

    id: int | str | None
    result: object = None


class CommandError(msgspec.Struct):
    """Error reply: ``{"code": n, "msg": "...", "id": N}``."""

    code: int
    msg: str
    id: int | str | None = None


class NestedError(msgspec.Struct):
    """``error`` member of the nested error form ``{"error": {"code", "msg"}, "id": N}``."""

    code: int | None = None
    msg: str = ""


class Frame(msgspec.Struct):
    """Any frame on a combined-stream connection, decoded just enough to dispatch it.

    Stream data is ``{"stream", "data"}``; command replies carry ``id`` with
    ``result`` or an error (flat ``code``/``msg`` as documented, or nested under
    ``error``); ``serverShutdown`` may also come raw as ``{"e": ...}``. An absent
    ``result`` decodes to an empty ``Raw``, a JSON ``null`` one to ``b"null"``.
    """

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    result: msgspec.Raw = msgspec.Raw()
    id: int | str | None = None
    code: int | None = None
    msg: str | None = None
    error: NestedError | None = None
    e: str | None = None


class PartialFrame(msgspec.Struct):
    """A partial-depth stream frame decoded in one pass: the hot path in top mode.

    Anything else (a reply, another stream, a malformed payload) fails to decode as
    this and takes the general ``Frame`` path, which says what it was.
    """

    stream: str
    data: PartialDepthRaw


class UpdateFrame(msgspec.Struct):
    """A diff-depth stream frame decoded in one pass: the hot path in depth mode."""

    stream: str
    data: DepthUpdate


_frame_decoder: Final = msgspec.json.Decoder(Frame)
_partial_frame_decoder: Final = msgspec.json.Decoder(PartialFrame)
_update_frame_decoder: Final = msgspec.json.Decoder(UpdateFrame)
_partial_decoder: Final = msgspec.json.Decoder(PartialDepth)
_update_decoder: Final = msgspec.json.Decoder(DepthUpdate)
_snapshot_decoder: Final = msgspec.json.Decoder(DepthSnapshot)
_encoder: Final = msgspec.json.Encoder()


def partial_levels(depth: int | None) -> int:
    """The partial-depth stream size serving ``depth`` levels (the smallest that is enough)."""
    if depth is None:
        return PARTIAL_LEVELS[-1]
    for levels in PARTIAL_LEVELS:
        if depth <= levels:
            return levels
    raise ConfigError(
        f"{NAME}: top mode offers at most {PARTIAL_LEVELS[-1]} levels "
        f"(depth5/10/20 streams); got depth={depth}, use mode 'depth' for more"
    )


def subscribe_request(streams: list[str], request_id: int) -> str:
    return _encoder.encode(SubscribeRequest("SUBSCRIBE", streams, request_id)).decode()


class _DiffSync(DiffSync):
    """The update-id rules: drop stale, apply in sequence, any break is a gap.

    ``position`` is the book's update id ``B``. The rules, restated from the
    venue's documentation: buffer events; fetch the snapshot (``lastUpdateId`` L);
    fetch again if L is older than the first buffered ``U``; drop events with
    ``u <= L``; the first applied event must satisfy ``U <= L + 1 <= u``, each
    later one ``U == previous u + 1``; anything else is a gap: discard the book
    and start over.
    """

    snapshot_name = "depth"
    diff_name = "events"

    def __init__(self, url: str, params: tuple[tuple[str, str], ...]) -> None:
        super().__init__(SnapshotRequests(url, params))
        self.first_pending = False

    def reset(self) -> None:
        super().reset()
        self.first_pending = False

    def install(self, snapshot: SnapshotBody) -> None:
        super().install(snapshot)
        self.first_pending = True

    def on_subscribed(self) -> list[Event]:
        """Ask for the snapshot as soon as the stream is live, not at its first event.

        Safe by the update-id rules: events arriving meanwhile are buffered, and if
        none is buffered when the snapshot lands, the first live event is still held
        to ``U <= L + 1``. It keeps a quiet symbol from waiting for a trade to get
        its book.
        """
        if self.position is not None or self.requests.in_flight:
            return []
        return [self.requests.request()]

    def apply_live(
        self,
        first: int,
        last: int,
        event_time_ms: int | None,
        bids: list[PriceAmount],
        asks: list[PriceAmount],
    ) -> list[Event]:
        position = self.position
        assert position is not None
        if last <= position:
            self.counters.dropped += 1
            return [Dropped(1, f"update ids {first}..{last} already in the book")]
        # First event: U <= B + 1 <= u (the second half holds, u > B was checked above);
        # later ones must continue exactly: U == B + 1.
        if first != position + 1 and not (self.first_pending and first <= position):
            return self._gap(Diff(first, last, event_time_ms, bids, asks), position)
        crossed = self.book.apply(bids, asks)
        self.position = last
        self.first_pending = False
        self.counters.applied += 1
        if crossed or self.own_integrity:
            return self.verified(event_time_ms)
        return [BookChanged(event_time_ms)]

    def _gap(self, diff: Diff, last: int) -> list[Event]:
        self.counters.gaps += 1
        reason = f"sequence gap: book at update id {last}, next event starts at {diff.first}"
        self.reset()
        self.buffer.append(diff)
        return [BookReset(reason, gap=True), self.requests.request()]

    def parse_snapshot(self, body: bytes) -> SnapshotBody:
        snapshot = _snapshot_decoder.decode(body)
        bids = self.levels.snapshot(snapshot.bids)
        asks = self.levels.snapshot(snapshot.asks)
        return SnapshotBody(snapshot.lastUpdateId, bids, asks, None)


class BinanceProtocol(BookProtocol[_DiffSync]):
    """Sans-I/O Binance client for one symbol over the combined-stream endpoint."""

    def __init__(
        self,
        instrument: str,
        *,
        mode: Mode = "top",
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        levels: int | None = None,
    ) -> None:
        venue_symbol = require_alnum(symbol or symbol_of(instrument), f"{NAME}: symbol")
        self.symbol = venue_symbol.upper()
        lower = venue_symbol.lower()
        if mode == "top":
            self.stream = f"{lower}@depth{partial_levels(levels)}@100ms"
            limit = DEFAULT_SNAPSHOT_LIMIT
        else:
            self.stream = f"{lower}@depth@100ms"
            limit = levels or DEFAULT_SNAPSHOT_LIMIT
            if not 1 <= limit <= MAX_SNAPSHOT_LIMIT:
                raise ConfigError(f"{NAME}: REST depth limit must be 1..{MAX_SNAPSHOT_LIMIT}")
        rest = rest_url or DEFAULT_REST_URL
        sync = _DiffSync(
            join_url(rest, DEPTH_PATH), (("symbol", self.symbol), ("limit", str(limit)))
        )
        super().__init__(NAME, mode, ws_url or DEFAULT_WS_URL, rest, (self.stream,), sync)
        self._request_id = 0
        self._pending_id: int | None = None
        self._top_update_id = 0
        """Top mode: ``lastUpdateId`` of the partial book held (read only while one is)."""

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> BinanceProtocol:
        return cls(
            instrument,
            mode=config.mode,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
            levels=config.depth,
        )

    @property
    def book_id(self) -> int | None:
        """Diff mode: the update id the book is at (``None`` while unsynced)."""
        return self._diff.position

    @property
    def venue_seq(self) -> int | None:
        """The book's update id: diff mode ``u`` of the last applied event (the
        snapshot's ``lastUpdateId`` before one), top mode the partial's ``lastUpdateId``."""
        if self.mode == "top":
            return self._top_update_id if self._have_top else None
        return self._diff.position

    # --- driving ------------------------------------------------------------------------

    def _subscribe_text(self) -> str:
        self._request_id += 1
        self._pending_id = self._request_id
        return subscribe_request(list(self.streams), self._request_id)

    def receive(self, frame: str | bytes) -> list[Event]:
        # Our stream's data in one decode; anything else is sorted out by ``_receive_any``.
        if self.mode == "depth":
            try:
                update = _update_frame_decoder.decode(frame)
            except msgspec.DecodeError:
                return self._receive_any(frame)
            if update.stream != self.stream:
                return self._receive_any(frame)
            return self._on_update(update.data)
        try:
            partial = _partial_frame_decoder.decode(frame)
        except msgspec.DecodeError:
            return self._receive_any(frame)
        if partial.stream != self.stream:
            return self._receive_any(frame)
        data = partial.data
        try:
            changed = self._replace_top_sides(*self._top_sides(data.bids, data.asks), None)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        self._top_update_id = data.lastUpdateId
        return [changed]

    def _receive_any(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _frame_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Binance frame: {exc}")
        if msg.stream is not None:
            if msg.stream == self.stream:
                if not msg.data:
                    return self._skip(f"stream {msg.stream!r} frame without data")
                if self.mode == "top":
                    return self._decode_partial(msg.data)
                return self._decode_update(msg.data)
            if msg.stream == SHUTDOWN_STREAM:
                return [ReconnectNow("serverShutdown")]
            return [Ignored(f"stream {msg.stream!r} is not ours")]
        if msg.e == "serverShutdown":
            return [ReconnectNow("serverShutdown")]
        if msg.result or msg.code is not None or msg.error is not None:
            return self._on_reply(msg)
        return self._skip("neither stream data nor a command reply")

    # --- internals ----------------------------------------------------------------------

    def _on_reply(self, msg: Frame) -> list[Event]:
        if self._subscribed or self._pending_id is None:
            return [Ignored(f"reply to request id {msg.id!r} not awaited")]
        code = msg.code if msg.code is not None else (msg.error.code if msg.error else None)
        text = msg.msg if msg.msg is not None else (msg.error.msg if msg.error else "")
        is_error = msg.code is not None or msg.error is not None
        # An error with a null id is the reply to a request the venue could not read.
        if msg.id != self._pending_id and not (is_error and msg.id is None):
            return [Ignored(f"reply to request id {msg.id!r}, awaiting {self._pending_id}")]
        self._pending_id = None
        stream = ", ".join(self.streams)
        if is_error:
            return [SubscriptionRejected(stream, f"error code {code}: {text}")]
        if bytes(msg.result) != b"null":
            shown = bytes(msg.result)[:100].decode(errors="replace")
            return [SubscriptionRejected(stream, f"unexpected SUBSCRIBE result {shown}")]
        events = self._acknowledged()
        if self.mode == "depth":
            events.extend(self._diff.on_subscribed())
        return events

    def _decode_partial(self, data: msgspec.Raw) -> list[Event]:
        try:
            msg = _partial_decoder.decode(data)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        return self._on_partial(msg)

    def _on_partial(self, msg: PartialDepth) -> list[Event]:
        try:
            changed = self._replace_top(self._levels(msg.bids), self._levels(msg.asks), None)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        self._top_update_id = msg.lastUpdateId
        return [changed]

    def _decode_update(self, data: msgspec.Raw) -> list[Event]:
        try:
            msg = _update_decoder.decode(data)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        return self._on_update(msg)

    def _on_update(self, msg: DepthUpdate) -> list[Event]:
        try:
            bids = self._levels(msg.b)
            asks = self._levels(msg.a)
        except BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        if msg.s != self.symbol:
            return self._skip(f"depthUpdate for {msg.s!r} on stream {self.stream!r}")
        if not 0 <= msg.U <= msg.u:
            return self._skip(f"bad update id range U={msg.U} u={msg.u}")
        return self._diff.on_diff(msg.U, msg.u, msg.E, bids, asks)


def symbol_of(instrument: str) -> str:
    """``ETH-BTC`` (or the compact ``ethbtc``) -> Binance's ``ETHBTC``."""
    return instrument.replace("-", "").upper()


def capture_snapshot(protocol: VenueProtocol) -> FetchSnapshot:
    """The REST depth a capture carries for replays, whatever the mode."""
    assert isinstance(protocol, BinanceProtocol)
    url = join_url(protocol.rest_url, DEPTH_PATH)
    params = (("symbol", protocol.symbol), ("limit", str(DEFAULT_SNAPSHOT_LIMIT)))
    return FetchSnapshot(url, params, 0, 0.0)


SPEC: Final = VenueSpec(
    name=NAME,
    create=BinanceProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.binance_venue:SIM_VENUE",
    url_hosts=("binance",),
    capture_snapshot=capture_snapshot,
)
