"""The bus wire format: msgspec msgpack, one versioned envelope around one body.

Sans-I/O: bytes in, messages out, nothing else. Every message is an
``Envelope`` (an array: version, kind, subject, epoch, seq, sent_ns, payload)
whose payload is the msgpack of one body struct. The envelope is decoded first,
so a message from a newer or older program (another ``version``) or of an
unknown ``kind`` is reported as such instead of as a confusing field error.

Bodies are full states, never diffs: a consumer that misses messages recovers
from any later one (or from the subject's latest value).

Prices and amounts stay exact. ``core.fixed`` values count ``10**-18`` units and
outgrow msgpack's 64-bit integers (a price of 20 already needs 65 bits), so each
travels as ``(whole, frac)`` = ``divmod(value, 10**18)``: two native integers,
exact, and one multiply-add to rebuild. Doubles would round; decimal strings
would cost a parse per value.

Decoding validates everything the rest of the program relies on (names, sorted
sides, positive amounts, the spread matching the levels, the subject matching
the body) and raises only ``BusMessageError``; ``BusCodec.decode`` turns that
into a counted, logged skip.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from itertools import pairwise
from typing import Final

import msgspec

from dragonflybot.bus.subjects import book_subject, feed_subject, valid_name, view_subject
from dragonflybot.core.fixed import ONE, Fixed
from dragonflybot.errors import BusMessageError, ConfigError

log = logging.getLogger(__name__)

VERSION: Final = 1
"""The envelope and body layout; bump on any incompatible change."""

_INT64_MAX: Final = 2**63 - 1


class Kind(enum.IntEnum):
    """What the payload holds (the envelope's ``kind``)."""

    VIEW = 1
    DOWN = 2
    HEARTBEAT = 3
    BOOK = 4


WireFixed = tuple[int, int]
"""A fixed-point value as ``(whole, frac)``: ``whole * 10**18 + frac``, ``0 <= frac < 10**18``."""

WireLevel = tuple[int, int, int, int]
"""A venue level: price whole, price frac, amount whole, amount frac."""

WireMergedLevel = tuple[str, int, int, int, int]
"""A consolidated level: venue, then as ``WireLevel``."""


class ViewMsg(msgspec.Struct, frozen=True, array_like=True):
    """A venue's top N of one instrument (subject ``view.<venue>.<instrument>``)."""

    venue: str
    instrument: str
    bids: tuple[WireLevel, ...]
    """Best first (price strictly descending), amounts positive."""
    asks: tuple[WireLevel, ...]
    """Best first (price strictly ascending), amounts positive."""
    venue_seq: int | None
    """The venue's own update id or sequence, where it gives one."""
    exchange_ms: int | None
    """The venue's event time (Unix ms), where it gives one."""
    recv_ns: int
    """Wall-clock receive time (Unix ns) of the venue frame, at the feed process."""


class DownMsg(msgspec.Struct, frozen=True, array_like=True):
    """The venue's book of the instrument is not valid (disconnected, resyncing): exclude it."""

    venue: str
    instrument: str
    reason: str


class HeartbeatMsg(msgspec.Struct, frozen=True, array_like=True):
    """The feed process for ``venue`` is alive (subject ``feed.<venue>``), sent while quiet too."""

    venue: str
    interval_ms: int
    """How often the feed sends it, so a consumer can check its ``stale_after`` is longer."""


class BookMsg(msgspec.Struct, frozen=True, array_like=True):
    """An instrument's consolidated top N (subject ``book.<instrument>``): what a gateway serves."""

    instrument: str
    book_seq: int
    """The aggregator's state number (consecutive per aggregator run)."""
    live: tuple[str, ...]
    """Venues merged into the book; empty when no venue is live (serve NOT_SERVING)."""
    bids: tuple[WireMergedLevel, ...]
    asks: tuple[WireMergedLevel, ...]
    spread: WireFixed | None
    """Best ask - best bid (may be negative when venues cross); ``None`` when a side is empty."""
    newest_recv_ns: int | None
    """Wall-clock receive time (Unix ns) of the newest venue frame merged in."""
    published_ns: int
    """Wall-clock time (Unix ns) the aggregator published the state."""


Body = ViewMsg | DownMsg | HeartbeatMsg | BookMsg

_KIND_OF: Final[dict[type[Body], Kind]] = {
    ViewMsg: Kind.VIEW,
    DownMsg: Kind.DOWN,
    HeartbeatMsg: Kind.HEARTBEAT,
    BookMsg: Kind.BOOK,
}


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """What goes on the wire; ``payload`` is the msgpack of one body."""

    version: int
    kind: int
    subject: str
    epoch: int
    """Identifies the publisher's run: a restarted publisher starts its sequences again."""
    seq: int
    """1, 2, 3, ... per subject within one epoch."""
    sent_ns: int
    """Wall-clock time (Unix ns) the publisher wrote the message."""
    payload: msgspec.Raw


class BusMessage(msgspec.Struct, frozen=True):
    """A decoded, validated message."""

    subject: str
    epoch: int
    seq: int
    sent_ns: int
    body: Body

    @property
    def kind(self) -> Kind:
        return _KIND_OF[type(self.body)]


def split_fixed(value: Fixed) -> WireFixed:
    """``value`` as ``(whole, frac)``; ``ConfigError`` when out of the wire's range."""
    whole, frac = divmod(value, ONE)
    if not -_INT64_MAX <= whole <= _INT64_MAX:
        raise ConfigError(f"fixed-point value {value} is out of the bus's range")
    return whole, frac


def join_fixed(whole: int, frac: int) -> Fixed:
    """The inverse of ``split_fixed``."""
    return whole * ONE + frac


def wire_levels(levels: Sequence[tuple[Fixed, Fixed]]) -> tuple[WireLevel, ...]:
    """Venue levels ``(price, amount)`` in wire form."""
    out = []
    for price, amount in levels:
        pw, pf = split_fixed(price)
        aw, af = split_fixed(amount)
        out.append((pw, pf, aw, af))
    return tuple(out)


def levels_of(wire: Sequence[WireLevel]) -> list[tuple[Fixed, Fixed]]:
    """``(price, amount)`` pairs back from wire levels (validated by ``decode``)."""
    return [(pw * ONE + pf, aw * ONE + af) for pw, pf, aw, af in wire]


def wire_merged_levels(levels: Sequence[tuple[str, Fixed, Fixed]]) -> tuple[WireMergedLevel, ...]:
    """Consolidated levels ``(venue, price, amount)`` in wire form."""
    out = []
    for venue, price, amount in levels:
        pw, pf = split_fixed(price)
        aw, af = split_fixed(amount)
        out.append((venue, pw, pf, aw, af))
    return tuple(out)


def merged_levels_of(wire: Sequence[WireMergedLevel]) -> list[tuple[str, Fixed, Fixed]]:
    """``(venue, price, amount)`` triples back from wire levels."""
    return [(v, pw * ONE + pf, aw * ONE + af) for v, pw, pf, aw, af in wire]


_payload_encoder: Final = msgspec.msgpack.Encoder()
_envelope_decoder: Final = msgspec.msgpack.Decoder(Envelope)
_body_decoders: Final[dict[int, msgspec.msgpack.Decoder[Body]]] = {
    kind: msgspec.msgpack.Decoder(cls) for cls, kind in _KIND_OF.items()
}


def encode(subject: str, epoch: int, seq: int, sent_ns: int, body: Body) -> bytes:
    """One message's bytes. The body is not validated here: publishers build it from
    already valid in-process values (``VenueView``, ``Consolidated``)."""
    payload = msgspec.Raw(_payload_encoder.encode(body))
    envelope = Envelope(VERSION, _KIND_OF[type(body)], subject, epoch, seq, sent_ns, payload)
    return _payload_encoder.encode(envelope)


def decode(data: bytes) -> BusMessage:
    """Decode and validate one message; ``BusMessageError`` (with a short reason) if bad."""
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        version = _version_of(data)
        if version is not None and version != VERSION:
            raise BusMessageError(f"version {version}, expected {VERSION}") from exc
        raise BusMessageError(f"undecodable envelope: {exc}") from exc
    if envelope.version != VERSION:
        raise BusMessageError(f"version {envelope.version}, expected {VERSION}")
    decoder = _body_decoders.get(envelope.kind)
    if decoder is None:
        raise BusMessageError(f"unknown kind {envelope.kind}")
    if envelope.seq < 1 or envelope.epoch < 0:
        raise BusMessageError(f"bad sequence {envelope.epoch}/{envelope.seq}")
    try:
        body = decoder.decode(envelope.payload)
    except msgspec.DecodeError as exc:
        raise BusMessageError(f"bad {Kind(envelope.kind).name} payload: {exc}") from exc
    expected = _validate(body)
    if envelope.subject != expected:
        raise BusMessageError(f"subject {envelope.subject!r} does not match the body ({expected})")
    return BusMessage(envelope.subject, envelope.epoch, envelope.seq, envelope.sent_ns, body)


def _version_of(data: bytes) -> int | None:
    """The version field of something envelope-shaped that did not decode as ours, if any."""
    try:
        value = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return None
    if isinstance(value, list) and value and type(value[0]) is int:
        return value[0]
    return None


def _validate(body: Body) -> str:
    """Check what msgspec's types cannot; return the subject the body belongs on."""
    if isinstance(body, ViewMsg):
        _name("venue", body.venue)
        _name("instrument", body.instrument)
        _side(body.bids, descending=True)
        _side(body.asks, descending=False)
        return view_subject(body.venue, body.instrument)
    if isinstance(body, DownMsg):
        _name("venue", body.venue)
        _name("instrument", body.instrument)
        return view_subject(body.venue, body.instrument)
    if isinstance(body, HeartbeatMsg):
        _name("venue", body.venue)
        if body.interval_ms <= 0:
            raise BusMessageError(f"heartbeat interval {body.interval_ms} ms is not positive")
        return feed_subject(body.venue)
    _name("instrument", body.instrument)
    for venue in body.live:
        _name("venue", venue)
    _merged_side(body.bids, body.live, descending=True)
    _merged_side(body.asks, body.live, descending=False)
    if body.bids and body.asks:
        if body.spread is None:
            raise BusMessageError("book with both sides has no spread")
        _fraction(body.spread[1])
        spread = join_fixed(*body.spread)
        best_ask = join_fixed(body.asks[0][1], body.asks[0][2])
        best_bid = join_fixed(body.bids[0][1], body.bids[0][2])
        if spread != best_ask - best_bid:
            raise BusMessageError("spread does not match the best levels")
    elif body.spread is not None:
        raise BusMessageError("book with an empty side has a spread")
    return book_subject(body.instrument)


def _name(what: str, name: str) -> None:
    if not valid_name(name):
        raise BusMessageError(f"bad {what} name {name[:40]!r}")


def _fraction(frac: int) -> None:
    if not 0 <= frac < ONE:
        raise BusMessageError(f"fraction {frac} out of range")


def _value(whole: int, frac: int, *, positive: bool) -> Fixed:
    _fraction(frac)
    if whole < 0 or (positive and whole == 0 and frac == 0):
        raise BusMessageError("price or amount out of range")
    return whole * ONE + frac


def _side(levels: Sequence[WireLevel], *, descending: bool) -> None:
    # One pass of plain comparisons, no call per value: this runs for every view
    # an aggregator receives (twice per message at depth 10: about 3 µs).
    prices: list[Fixed] = []
    append = prices.append
    for pw, pf, aw, af in levels:
        if not (pw >= 0 and 0 <= pf < ONE and aw >= 0 and 0 <= af < ONE and (aw or af)):
            _value(pw, pf, positive=False)
            _value(aw, af, positive=True)
        append(pw * ONE + pf)
    pairs = pairwise(prices)
    if not (all(a > b for a, b in pairs) if descending else all(a < b for a, b in pairs)):
        raise BusMessageError("side is not strictly ordered best first")


def _merged_side(
    levels: Sequence[WireMergedLevel], live: Sequence[str], *, descending: bool
) -> None:
    previous: Fixed | None = None
    for venue, pw, pf, aw, af in levels:
        if venue not in live:
            raise BusMessageError(f"level from venue {venue[:40]!r}, which is not live")
        price = _value(pw, pf, positive=False)
        _value(aw, af, positive=True)
        # Equal prices from different venues are legal in a merged side.
        if previous is not None and (price > previous if descending else price < previous):
            raise BusMessageError("merged side is not ordered best first")
        previous = price


_REASONS: Final = (("undecodable", "undecodable"), ("version", "version"), ("unknown kind", "kind"))


def _reason(text: str) -> str:
    """The counter a decode error goes to: undecodable, version, kind or invalid."""
    for prefix, reason in (
        ("undecodable", "undecodable"),
        ("version", "version"),
        ("unknown kind", "kind"),
    ):
        if text.startswith(prefix):
            return reason
    return "invalid"


class BusCodec:
    """``decode`` that never raises: a bad message is counted by reason, logged, skipped.

    One per consumer task, so its counters describe that consumer. Logging is
    limited (the first few of each reason, then one in ``log_every``): a
    misbehaving publisher must not turn every message into a log line.
    """

    __slots__ = ("_log_every", "decoded", "skipped")

    def __init__(self, *, log_every: int = 1000) -> None:
        self._log_every = log_every
        self.decoded = 0
        self.skipped: dict[str, int] = {}
        """Skipped messages by reason: ``undecodable``, ``version``, ``kind``, ``invalid``."""

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def decode(self, data: bytes, *, where: str = "bus") -> BusMessage | None:
        try:
            message = decode(data)
        except BusMessageError as exc:
            reason = _reason(str(exc))
            count = self.skipped.get(reason, 0) + 1
            self.skipped[reason] = count
            if count <= 3 or count % self._log_every == 0:
                log.warning("skipped a bad bus message on %s (%d so far): %s", where, count, exc)
            return None
        self.decoded += 1
        return message
