"""OKX v5 public ``books`` channel: stream snapshot, updates, seqId chain, CRC32 over the top 25.

Wire schema here is shared by the feed and the simulator (``sim.okx_wire``).
``OkxProtocol`` is the sans-I/O client for one instrument (``shared/venues.md`` 6):

* Subscribing makes OKX send ``action: snapshot`` (400 levels), then ``update``
  messages with absolute sizes (``"0"`` removes).
* Continuity: when the messages carry ``seqId``/``prevSeqId`` each update's
  ``prevSeqId`` must equal the ``seqId`` of the message before it. That one rule
  accepts the keepalive (empty update, ``prevSeqId == seqId``) and the maintenance
  restart (``seqId`` going backwards while ``prevSeqId`` still chains). Anything
  else, including an update claiming ``prevSeqId == -1`` (which only a snapshot may
  carry: it proves nothing about what was missed), discards the book and
  resubscribes the instrument. Messages without ids (OKX before they were added,
  as in the 2022 recording) are not chain-checked: the checksum is their only guard.
* Integrity: after every applied message, when ``checksum`` is non-zero, the signed
  CRC32 of the best 25 levels interleaved, over the exact strings received, must
  match (``okx_checksum``). OKX sends 0 since June 2026: nothing to verify then.
* Keepalive: OKX closes a connection silent for 30 s; ``heartbeat()`` is the text
  ``ping`` (the session sends it every ``heartbeat_interval``), answered by ``pong``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Final

import msgspec

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import WireLevel
from dragonflybot.core.fixed import SCALE, Fixed, parse
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.instrument import canonical
from dragonflybot.venues import okx_checksum
from dragonflybot.venues.base import (
    BAD_INPUT,
    Event,
    Ignored,
    ReconnectNow,
    SubscriptionRejected,
    VenueNotice,
    parse_int,
)
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.book_sync import FramesSync
from dragonflybot.venues.spec import VenueSpec

NAME: Final = "okx"
DEFAULT_WS_URL: Final = "wss://ws.okx.com:8443/ws/v5/public"
DEFAULT_REST_URL: Final = "https://www.okx.com"
CHANNEL: Final = "books"
PING: Final = "ping"
PONG: Final = "pong"
_INST_ID: Final = re.compile(r"[A-Z0-9]{1,20}(-[A-Z0-9]{1,20}){1,3}", re.ASCII)

_POW10: Final = tuple(10 ** (SCALE - n) for n in range(SCALE + 1))
MEMO_LIMIT: Final = 8192
"""Strings remembered per memo (emptied when full: a hostile feed costs no memory)."""
MEMO_LONGEST: Final = 40
"""Longer strings are parsed every time (no venue sends them)."""

SignedChecksum = Annotated[int, msgspec.Meta(ge=-(1 << 31), le=(1 << 31) - 1)]
SeqId = Annotated[int, msgspec.Meta(ge=-1)]
RawLevel = tuple[str, ...]
"""``[price, size, "0", orders]``: only the first two are used."""


# --- wire schema --------------------------------------------------------------------------


class Arg(msgspec.Struct):
    channel: str
    instId: str | None = None


class BookData(msgspec.Struct, kw_only=True):
    asks: list[RawLevel] = []
    bids: list[RawLevel] = []
    ts: str | None = None
    checksum: SignedChecksum = 0
    seqId: SeqId | None = None
    prevSeqId: SeqId | None = None


class BookMessage(msgspec.Struct):
    """``{"arg":{"channel":"books","instId":..},"action":"snapshot"|"update","data":[..]}``."""

    arg: Arg
    action: str
    data: list[BookData]


class Envelope(msgspec.Struct):
    """Any JSON frame, decoded just enough to dispatch it (event reply or channel data)."""

    event: str | None = None
    arg: Arg | None = None
    action: str | None = None
    code: str | None = None
    msg: str | None = None


class Request(msgspec.Struct):
    """Client -> venue: ``{"op":"subscribe"|"unsubscribe","args":[...]}``."""

    op: str
    args: list[Arg]


_book_decoder: Final = msgspec.json.Decoder(BookMessage)
_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_encoder: Final = msgspec.json.Encoder()


def book_request(op: str, inst_id: str) -> str:
    return _encoder.encode(Request(op, [Arg(CHANNEL, inst_id)])).decode()


def inst_id_of(instrument: str, symbol: str | None = None) -> str:
    """The OKX ``instId`` (``ETH-BTC``) of a canonical instrument or an explicit symbol."""
    text = symbol if symbol is not None else canonical(instrument)
    if not _INST_ID.fullmatch(text):
        raise ConfigError(
            f"{NAME}: instId must look like 'ETH-BTC' (or the instrument like 'ETH-BTC'); "
            f"got {text!r}: set the venue's symbol"
        )
    return text


NO_IDS: Final = -2
"""Position of a book whose messages carry no ``seqId`` (OKX before ids, the 2022
recording): the checksum is its only guard, and the next message with ids starts
the chain."""
NO_PREV: Final = -3
"""``first`` of an update that has a ``seqId`` but no ``prevSeqId``: never continues."""


class OkxSync(FramesSync):
    """The ``books`` book: ``prevSeqId`` chain before applying, CRC32 after."""

    update_name = "books update"

    def continues(self, position: int, first: int, last: int) -> bool:
        """``prevSeqId`` equals the book's ``seqId``: that one rule accepts the keepalive
        (equal ids) and the maintenance restart (``seqId`` going back while the chain
        holds). ``prevSeqId == -1`` only a snapshot may carry."""
        if first == NO_IDS:
            return True
        if first == NO_PREV or first == -1:
            return False
        return position == NO_IDS or first == position

    def integrity(self) -> str | None:
        """Signed CRC32 over the best 25 bids and asks interleaved (when OKX sent one)."""
        failure = super().integrity()
        if failure is not None or self.checksum is None:
            return failure
        got = okx_checksum.checksum(*self.book.wires(okx_checksum.LEVELS))
        return None if got == self.checksum else self.checksum_mismatch(got)


class OkxProtocol(BookProtocol[OkxSync]):
    """Sans-I/O OKX v5 client for one instrument's ``books`` (mode ignored: the book
    always comes whole from the stream)."""

    def __init__(
        self,
        instrument: str,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        symbol: str | None = None,
        depth: int | None = None,
    ) -> None:
        self.inst_id = inst_id_of(instrument, symbol)
        if depth is not None and depth < okx_checksum.LEVELS:
            raise ConfigError(f"{NAME}: depth must keep the {okx_checksum.LEVELS} checked levels")
        sync = OkxSync(self._resubscribe_texts, keep_wire=True, depth=depth)
        super().__init__(
            NAME,
            "depth",
            ws_url or DEFAULT_WS_URL,
            rest_url or DEFAULT_REST_URL,
            (f"{CHANNEL}:{self.inst_id}",),
            sync,
        )
        self.sync = sync
        self._resubscribing = False
        self._prices: dict[str, Fixed] = {}
        self._sizes: dict[str, Fixed] = {}

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> OkxProtocol:
        return cls(instrument, ws_url=config.ws_url, rest_url=config.rest_url, symbol=config.symbol)

    @property
    def venue_seq(self) -> int | None:
        """``seqId`` of the newest applied message (``None`` for messages without one)."""
        return self.last_seq

    @property
    def last_seq(self) -> int | None:
        """``seqId`` of the last applied message (``None``: no book, or a feed without ids)."""
        position = self.sync.position
        return None if position is None or position == NO_IDS else position

    # --- requests -----------------------------------------------------------------------

    def _subscribe_text(self) -> str:
        self._resubscribing = False
        return book_request("subscribe", self.inst_id)

    def _resubscribe_texts(self) -> tuple[str, ...]:
        self._resubscribing = True
        return (book_request("unsubscribe", self.inst_id), book_request("subscribe", self.inst_id))

    def heartbeat(self) -> str:
        return PING

    # --- receiving ----------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = _book_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._receive_any(frame, exc)
        arg = msg.arg
        if arg.channel != CHANNEL or arg.instId != self.inst_id:
            return [Ignored(f"{arg.channel} data for {arg.instId}")]
        return self._on_book(msg)

    def _receive_any(self, frame: str | bytes, book_error: Exception) -> list[Event]:
        """Anything but a well-formed books message; ``book_error`` says why it was not one."""
        if frame == PONG or frame == b"pong":
            return [Ignored(PONG)]
        try:
            msg = _envelope_decoder.decode(frame)
        except msgspec.DecodeError as exc:
            return self._skip(f"not an OKX frame: {exc}")
        arg = msg.arg
        if msg.event is not None:
            return self._on_event(msg)
        if arg is None:
            return self._skip("neither channel data nor an event")
        if arg.channel != CHANNEL or arg.instId != self.inst_id:
            return [Ignored(f"{arg.channel} data for {arg.instId}")]
        snapshot = msg.action == "snapshot"
        return self._skip_book(f"malformed books message: {book_error}", snapshot=snapshot)

    def _on_event(self, msg: Envelope) -> list[Event]:
        event = msg.event
        arg = msg.arg
        ours = arg is not None and arg.channel == CHANNEL and arg.instId == self.inst_id
        if event == "subscribe":
            if not ours:
                return [Ignored(f"subscription of {arg} acknowledged")]
            self._resubscribing = False
            if self._subscribed:
                return [Ignored("resubscription acknowledged")]
            return self._acknowledged()
        if event == "unsubscribe":
            return [Ignored(f"unsubscription of {arg} acknowledged")]
        if event == "error":
            text = f"error {msg.code}: {msg.msg}"
            if not self._subscribed:
                return [SubscriptionRejected(self.streams[0], text)]
            if self._resubscribing:
                self._resubscribing = False
                return [ReconnectNow(f"resubscribe of {self.streams[0]} failed: {text}")]
            return [VenueNotice(text)]
        if event == "notice":
            return [VenueNotice(f"notice {msg.code}: {msg.msg}")]
        return [Ignored(f"event {event!r}")]

    def _on_book(self, msg: BookMessage) -> list[Event]:
        action = msg.action
        if action == "snapshot":
            snapshot = True
        elif action == "update":
            snapshot = False
        else:
            return self._skip(f"books message with action {action!r}")
        parsed: list[tuple[list[WireLevel], list[WireLevel], BookData, int | None]] = []
        try:
            for data in msg.data:
                ts = parse_int(data.ts, "ts") if data.ts is not None else None
                parsed.append(
                    (self._wire_levels(data.bids), self._wire_levels(data.asks), data, ts)
                )
        except BAD_INPUT as exc:
            return self._skip_book(f"malformed books {action}: {exc}", snapshot=snapshot)
        events: list[Event] = []
        sync = self.sync
        for bids, asks, data, ts in parsed:
            checksum = data.checksum or None
            seq = data.seqId
            if snapshot:
                position = NO_IDS if seq is None else seq
                events += sync.on_wire_snapshot(position, bids, asks, ts, checksum)
            else:
                if seq is None:
                    first = last = NO_IDS
                else:
                    prev = data.prevSeqId
                    first, last = (NO_PREV if prev is None else prev), seq
                events += sync.on_wire_update(first, last, bids, asks, ts, checksum)
            if sync.position is None:
                break  # dropped, or discarded and resubscribed: the rest is moot
        return events

    def _wire_levels(self, raw: Sequence[RawLevel]) -> list[WireLevel]:
        """Parse ``[price, size, ...]`` levels; raises ``DecodeError`` on the first bad one.

        Both strings are looked up in bounded memos first: prices repeat from message
        to message, and so do sizes (round lots, and every removal's ``"0"``); only a
        string that parsed is remembered, so a value is validated exactly as the
        first time.
        """
        prices = self._prices
        sizes = self._sizes
        get_price = prices.get
        get_size = sizes.get
        out: list[WireLevel] = []
        append = out.append
        try:
            for level in raw:
                price_text = level[0]
                size_text = level[1]
                price = get_price(price_text)
                if price is None:
                    price = _remember(prices, price_text)
                    if not price:
                        del prices[price_text]
                        raise DecodeError("price zero")
                size = get_size(size_text)
                if size is None:
                    # ``parse`` and ``_remember`` inlined: most sizes are new, so this runs
                    # per level. The checks are ``parse``'s own; anything else goes to it.
                    whole, dot, frac = size_text.partition(".")
                    n = len(frac)
                    if (
                        dot
                        and n <= SCALE
                        and len(whole) <= MEMO_LONGEST
                        and size_text.isascii()
                        and whole.isdigit()
                        and frac.isdigit()
                    ):
                        size = int(whole + frac) * _POW10[n]
                    else:
                        size = parse(size_text)
                    if len(size_text) <= MEMO_LONGEST:
                        if len(sizes) >= MEMO_LIMIT:
                            sizes.clear()
                        sizes[size_text] = size
                append((price, size, f"{price_text}:{size_text}" if size else ""))
        except IndexError:
            raise DecodeError("a level without a size") from None
        return out


def _remember(memo: dict[str, Fixed], text: str) -> Fixed:
    value = parse(text)
    if len(text) <= MEMO_LONGEST:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[text] = value
    return value


def symbol_of(instrument: str) -> str:
    """A canonical instrument's ``instId``: ``ETH-BTC`` is already OKX's spelling."""
    return inst_id_of(instrument)


SPEC: Final = VenueSpec(
    name=NAME,
    create=OkxProtocol.from_config,
    default_ws_url=DEFAULT_WS_URL,
    default_rest_url=DEFAULT_REST_URL,
    symbol=symbol_of,
    sim="dragonflybot.sim.okx_venue:SIM_VENUE",
    url_hosts=("okx",),
)
