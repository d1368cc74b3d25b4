"""Binance spot: combined-stream WebSocket, partial-depth and diff-depth books.

Wire schema here is shared by the feed and the simulator, so both sides of every
test speak exactly one definition of the protocol. ``BinanceProtocol`` is the
sans-I/O client side: subscribe, verify the ack, turn frames into book events,
and in diff mode keep the book in step with the REST snapshot by the update-id
rules of the official "how to manage a local order book" procedure.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import attrs
import msgspec

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.core.book import FullDepthBook, Level, Side, TopBook
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Dropped,
    Event,
    Ignored,
    ReconnectNow,
    SendText,
    Skipped,
    Subscribed,
    SubscriptionRejected,
    SyncCounters,
    VenueProtocol,
    join_url,
    parse_levels,
)
from dragonflybot.venues.requests import SnapshotRequests

NAME = "binance"
DEFAULT_WS_URL = "wss://stream.binance.com:9443/stream"
DEFAULT_REST_URL = "https://api.binance.com"
DEPTH_PATH = "/api/v3/depth"

PARTIAL_LEVELS: Final = (5, 10, 20)
"""The only top-N sizes of the partial-depth stream."""
DEFAULT_SNAPSHOT_LIMIT: Final = 1000
MAX_SNAPSHOT_LIMIT: Final = 5000
SHUTDOWN_STREAM: Final = "!serverShutdown"

RawLevels = list[tuple[str, str]]


class PartialDepth(msgspec.Struct):
    """``<sym>@depth<N>@100ms`` payload: a whole top-N book (no symbol, no event time)."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


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


_frame_decoder: Final = msgspec.json.Decoder(Frame)
_partial_decoder: Final = msgspec.json.Decoder(PartialDepth)
_update_decoder: Final = msgspec.json.Decoder(DepthUpdate)
_snapshot_decoder: Final = msgspec.json.Decoder(DepthSnapshot)
_encoder: Final = msgspec.json.Encoder()

_BAD_INPUT = (msgspec.DecodeError, DecodeError, ValueError)
"""What decoding/validating untrusted input may raise (msgspec's ValidationError included)."""


def partial_levels(depth: int | None) -> int:
    """The partial-depth stream size serving ``depth`` levels (the smallest that is enough)."""
    if depth is None:
        return PARTIAL_LEVELS[-1]
    for levels in PARTIAL_LEVELS:
        if depth <= levels:
            return levels
    raise ConfigError(
        f"{NAME}: snapshot mode offers at most {PARTIAL_LEVELS[-1]} levels "
        f"(depth5/10/20 streams); got depth={depth}, use mode 'diff' for more"
    )


def subscribe_request(streams: list[str], request_id: int) -> str:
    return _encoder.encode(SubscribeRequest("SUBSCRIBE", streams, request_id)).decode()


@attrs.define(slots=True)
class _Update:
    """A validated diff, levels already parsed: safe to buffer and apply later."""

    first: int
    last: int
    event_time: int
    bids: list[Level]
    asks: list[Level]


class _DiffSync:
    """The update-id state machine: buffer, snapshot, drop stale, apply in sequence.

    ``last_id`` is the book's update id ``B`` (``None`` while unsynced). The rules,
    restated from the venue's documentation: buffer events; fetch the snapshot
    (``lastUpdateId`` L); fetch again if L is older than the first buffered ``U``;
    drop events with ``u <= L``; the first applied event must satisfy
    ``U <= L + 1 <= u``, each later one ``U == previous u + 1``; anything else is a
    gap: discard the book and start over.
    """

    MAX_BUFFER: Final = 10_000
    """Events kept while unsynced (about 17 minutes at 100 ms): bounds memory when REST is down."""

    def __init__(self, url: str, params: tuple[tuple[str, str], ...]) -> None:
        self.book = FullDepthBook()
        self.counters = SyncCounters()
        self.requests = SnapshotRequests(url, params)
        self.buffer: deque[_Update] = deque()
        self.last_id: int | None = None
        self.first_pending = False

    def reset(self) -> None:
        self.book.clear()
        self.buffer.clear()
        self.last_id = None
        self.first_pending = False
        self.requests.cancel()

    def on_subscribed(self) -> list[Event]:
        """Ask for the snapshot as soon as the stream is live, not at its first event.

        Safe by the update-id rules: events arriving meanwhile are buffered, and if
        none is buffered when the snapshot lands, the first live event is still held
        to ``U <= L + 1``. It keeps a quiet symbol from waiting for a trade to get
        its book.
        """
        if self.last_id is not None or self.requests.in_flight:
            return []
        return [self.requests.request()]

    def on_update(self, update: _Update) -> list[Event]:
        if self.last_id is not None:
            return self._apply_live(update)
        events: list[Event] = []
        if len(self.buffer) >= self.MAX_BUFFER:
            events.append(Dropped(len(self.buffer), "buffer overflow while waiting for a snapshot"))
            self.counters.dropped += len(self.buffer)
            self.buffer.clear()
            self.requests.cancel()
        self.buffer.append(update)
        if not self.requests.in_flight:
            events.append(self.requests.request())
        return events

    def _apply_live(self, update: _Update) -> list[Event]:
        assert self.last_id is not None
        last = self.last_id
        if update.last <= last:
            self.counters.dropped += 1
            return [Dropped(1, f"update ids {update.first}..{update.last} already in the book")]
        # First event: U <= B + 1 <= u (the second half holds, u > B was checked above);
        # later ones must continue exactly: U == B + 1.
        in_sequence = update.first <= last + 1 if self.first_pending else update.first == last + 1
        if not in_sequence:
            return self._gap(update, last)
        self.book.apply(update.bids, update.asks)
        self.last_id = update.last
        self.first_pending = False
        self.counters.applied += 1
        return [BookChanged(update.event_time)]

    def _gap(self, update: _Update, last: int) -> list[Event]:
        self.counters.gaps += 1
        reason = f"sequence gap: book at update id {last}, next event starts at {update.first}"
        self.book.clear()
        self.last_id = None
        self.first_pending = False
        self.buffer.clear()
        self.buffer.append(update)
        self.requests.cancel()
        return [BookReset(reason, gap=True), self.requests.request()]

    def on_snapshot(self, token: int, body: bytes) -> list[Event]:
        if not self.requests.answer(token):
            return [Ignored("response to a snapshot request given up on")]
        try:
            snapshot = _snapshot_decoder.decode(body)
            bids = parse_levels(snapshot.bids)
            asks = parse_levels(snapshot.asks)
        except _BAD_INPUT as exc:
            self.counters.skipped += 1
            self.counters.refetches += 1
            return [Skipped(f"malformed depth snapshot: {exc}"), self.requests.request()]
        snap_id = snapshot.lastUpdateId
        if self.buffer and snap_id < self.buffer[0].first:
            self.counters.refetches += 1
            return [self.requests.request()]
        events: list[Event] = []
        stale = 0
        while self.buffer and self.buffer[0].last <= snap_id:
            self.buffer.popleft()
            stale += 1
        if stale:
            self.counters.dropped += stale
            events.append(Dropped(stale, f"buffered events not newer than snapshot {snap_id}"))
        self.book.load(bids, asks)
        self.counters.snapshots += 1
        self.last_id = snap_id
        self.first_pending = True
        self.requests.done()
        event_time: int | None = None
        pending = list(self.buffer)
        self.buffer.clear()
        for i, update in enumerate(pending):
            applied = self._apply_live(update)
            if isinstance(applied[0], BookReset):
                # _gap() re-buffered the failing event; the ones after it follow it.
                self.buffer.extend(pending[i + 1 :])
                events.extend(applied)
                return events
            if isinstance(applied[0], BookChanged):
                event_time = update.event_time
            else:
                events.extend(applied)
        events.append(BookChanged(event_time))
        return events


class BinanceProtocol(VenueProtocol):
    """Sans-I/O Binance client for one symbol over the combined-stream endpoint."""

    def __init__(
        self,
        instrument: str,
        *,
        mode: Mode = "snapshot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        levels: int | None = None,
    ) -> None:
        venue_symbol = symbol or instrument
        if not venue_symbol or not venue_symbol.isascii() or not venue_symbol.isalnum():
            raise ConfigError(f"{NAME}: symbol must be ASCII letters/digits, got {venue_symbol!r}")
        self.venue = NAME
        self.mode = mode
        self.ws_url = ws_url or DEFAULT_WS_URL
        self.rest_url = rest_url or DEFAULT_REST_URL
        self.symbol = venue_symbol.upper()
        lower = venue_symbol.lower()
        if mode == "snapshot":
            self.stream = f"{lower}@depth{partial_levels(levels)}@100ms"
            limit = DEFAULT_SNAPSHOT_LIMIT
        else:
            self.stream = f"{lower}@depth@100ms"
            limit = levels or DEFAULT_SNAPSHOT_LIMIT
            if not 1 <= limit <= MAX_SNAPSHOT_LIMIT:
                raise ConfigError(f"{NAME}: REST depth limit must be 1..{MAX_SNAPSHOT_LIMIT}")
        self.streams = (self.stream,)
        self._diff = _DiffSync(
            join_url(self.rest_url, DEPTH_PATH),
            (("symbol", self.symbol), ("limit", str(limit))),
        )
        self.counters = self._diff.counters
        self._top = TopBook()
        self._have_top = False
        self._request_id = 0
        self._pending_id: int | None = None
        self._subscribed = False

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

    # --- state --------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @property
    def synced(self) -> bool:
        return self._subscribed and (self.mode == "snapshot" or self._diff.last_id is not None)

    @property
    def has_book(self) -> bool:
        if self.mode == "snapshot":
            return self._have_top
        return self._diff.last_id is not None

    @property
    def book_id(self) -> int | None:
        """Diff mode: the update id the book is at (``None`` while unsynced)."""
        return self._diff.last_id

    @property
    def full_book(self) -> FullDepthBook:
        """Diff mode: the whole book (for checks; publish through ``top_*``)."""
        return self._diff.book

    def top_bids(self, n: int) -> Side:
        if self.mode == "snapshot":
            return self._top.top_bids(n)
        return self._diff.book.top_bids(n)

    def top_asks(self, n: int) -> Side:
        if self.mode == "snapshot":
            return self._top.top_asks(n)
        return self._diff.book.top_asks(n)

    # --- driving ------------------------------------------------------------------------

    def connection_made(self) -> list[Event]:
        self._subscribed = False
        self._top.clear()
        self._have_top = False
        self._diff.reset()
        self._request_id += 1
        self._pending_id = self._request_id
        return [SendText(subscribe_request(list(self.streams), self._request_id))]

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _frame_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not a Binance frame: {exc}")
        if msg.stream is not None:
            if msg.stream == self.stream:
                if not msg.data:
                    return self._skip(f"stream {msg.stream!r} frame without data")
                if self.mode == "snapshot":
                    return self._on_partial(msg.data)
                return self._on_update(msg.data)
            if msg.stream == SHUTDOWN_STREAM:
                return [ReconnectNow("serverShutdown")]
            return [Ignored(f"stream {msg.stream!r} is not ours")]
        if msg.e == "serverShutdown":
            return [ReconnectNow("serverShutdown")]
        if msg.result or msg.code is not None or msg.error is not None:
            return self._on_reply(msg)
        return self._skip("neither stream data nor a command reply")

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        if self.mode == "snapshot":
            return super().snapshot_received(token, body)
        return self._diff.on_snapshot(token, body)

    # --- internals ----------------------------------------------------------------------

    def _skip(self, reason: str) -> list[Event]:
        self.counters.skipped += 1
        return [Skipped(reason)]

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
        self._subscribed = True
        events: list[Event] = [Subscribed(self.streams)]
        if self.mode == "diff":
            events.extend(self._diff.on_subscribed())
        return events

    def _on_partial(self, data: msgspec.Raw) -> list[Event]:
        try:
            msg = _partial_decoder.decode(data)
            bids = parse_levels(msg.bids)
            asks = parse_levels(msg.asks)
            self._top.replace(bids, asks)  # validates order before replacing anything
        except _BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        self._have_top = True
        self.counters.applied += 1
        return [BookChanged(None)]

    def _on_update(self, data: msgspec.Raw) -> list[Event]:
        try:
            msg = _update_decoder.decode(data)
            bids = parse_levels(msg.b)
            asks = parse_levels(msg.a)
        except _BAD_INPUT as exc:
            return self._skip(f"malformed {self.stream} payload: {exc}")
        if msg.s != self.symbol:
            return self._skip(f"depthUpdate for {msg.s!r} on stream {self.stream!r}")
        if not 0 <= msg.U <= msg.u:
            return self._skip(f"bad update id range U={msg.U} u={msg.u}")
        return self._diff.on_update(_Update(msg.U, msg.u, msg.E, bids, asks))
