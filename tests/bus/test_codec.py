"""The bus wire format: exact round trips, and hostile bytes only ever a BusMessageError."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.aggregator.state import BookState
from dragonflybot.bus import codec
from dragonflybot.bus.codec import BookMsg, BusCodec, DownMsg, HeartbeatMsg, Kind, ViewMsg
from dragonflybot.bus.convert import book_message, consolidated, venue_view, view_message
from dragonflybot.core.fixed import ONE, parse
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView
from dragonflybot.errors import BusMessageError, DecodeError, DragonflybotError

from .helpers import sides, view_msg

names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
instruments = st.sampled_from(["BTC-USDT", "ETH-BTC", "SOL-USD"])
seqs = st.integers(min_value=1, max_value=2**63)
epochs = st.integers(min_value=0, max_value=2**63)
times = st.integers(min_value=0, max_value=2**63)


@st.composite
def venue_views(draw: st.DrawFn, venue: str | None = None) -> VenueView:
    return VenueView(
        venue if venue is not None else draw(names),
        draw(sides(descending=True, max_size=10)),
        draw(sides(descending=False, max_size=10)),
        draw(st.none() | st.integers(min_value=0, max_value=2**53)),
        draw(st.integers(min_value=0, max_value=2**62)),
        draw(st.none() | st.integers(min_value=0, max_value=2**63)),
    )


def roundtrip(subject: str, body: codec.Body, epoch: int = 1, seq: int = 1) -> codec.BusMessage:
    return codec.decode(codec.encode(subject, epoch, seq, 123, body))


@given(venue_views(), instruments, epochs, seqs)
def test_view_round_trip_is_exact(view: VenueView, instrument: str, epoch: int, seq: int) -> None:
    body = view_message(view, instrument)
    assert (body.venue_seq, body.exchange_ms) == (view.venue_seq, view.event_time_ms)
    message = roundtrip(f"view.{view.venue}.{instrument}", body, epoch, seq)
    assert (message.body, message.epoch, message.seq, message.sent_ns) == (body, epoch, seq, 123)
    assert message.kind is Kind.VIEW
    back = venue_view(message.body)  # type: ignore[arg-type]
    assert (back.venue, back.bids, back.asks) == (view.venue, view.bids, view.asks)
    assert (back.event_time_ms, back.venue_seq) == (view.event_time_ms, view.venue_seq)


@pytest.mark.parametrize("venue_seq", [-1, 2**64, 10**30])
def test_a_venue_sequence_the_wire_cannot_carry_travels_as_none(venue_seq: int) -> None:
    view = VenueView("binance", (), (), None, 0, venue_seq)
    body = view_message(view, "BTC-USDT")
    assert body.venue_seq is None
    assert roundtrip("view.binance.BTC-USDT", body).body == body


@given(st.lists(names, min_size=1, max_size=4, unique=True).flatmap(
    lambda vs: st.tuples(*(venue_views(v) for v in vs))
), st.integers(min_value=1, max_value=10), instruments)  # fmt: skip
def test_book_round_trip_is_exact(
    views: tuple[VenueView, ...], depth: int, instrument: str
) -> None:
    book = merge(views, depth)
    state = BookState(9, 1_000, book, frozenset(v.venue for v in views), None)
    body = book_message(state, instrument)
    message = roundtrip(f"book.{instrument}", body)
    assert message.body == body
    assert consolidated(message.body) == book  # type: ignore[arg-type]


@given(names, instruments, st.text(max_size=30), st.integers(1, 10**6))
def test_down_and_heartbeat_round_trip(
    venue: str, instrument: str, reason: str, interval: int
) -> None:
    down = DownMsg(venue, instrument, reason)
    assert roundtrip(f"view.{venue}.{instrument}", down).body == down
    beat = HeartbeatMsg(venue, interval)
    assert roundtrip(f"feed.{venue}", beat).body == beat


def test_fixed_point_beyond_64_bits_survives() -> None:
    huge = 10**30 + 1  # 10**12 units and one 10**-18: far beyond a msgpack integer
    bids = codec.wire_levels([(huge, ONE)])
    body = ViewMsg("v", "BTC-USDT", bids, (), None, None, 0)
    decoded = roundtrip("view.v.BTC-USDT", body).body
    assert codec.levels_of(decoded.bids) == [(huge, ONE)]  # type: ignore[union-attr]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_bus_message_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except BusMessageError as exc:
        assert isinstance(exc, DecodeError) and isinstance(exc, DragonflybotError)


@given(venue_views(), st.data())
def test_corrupted_messages_raise_only_bus_message_error(
    view: VenueView, data: st.DataObject
) -> None:
    good = bytearray(
        codec.encode(f"view.{view.venue}.BTC-USDT", 1, 1, 0, view_message(view, "BTC-USDT"))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(good) - 1))
        good[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    for candidate in (bytes(good), bytes(good[:cut])):
        with contextlib.suppress(BusMessageError):
            codec.decode(candidate)


@given(st.binary(max_size=100))
def test_bus_codec_never_raises_and_counts(data: bytes) -> None:
    counting = BusCodec()
    if counting.decode(data) is None:
        assert counting.skipped_total == 1
    else:
        assert counting.decoded == 1


def envelope(
    version: int = codec.VERSION,
    kind: int = Kind.VIEW,
    subject: str = "view.binance.BTC-USDT",
    payload: object = None,
) -> bytes:
    body = payload if payload is not None else view_msg()
    raw = msgspec.Raw(msgspec.msgpack.encode(body))
    return msgspec.msgpack.encode(codec.Envelope(version, kind, subject, 1, 1, 0, raw))


def test_version_kind_and_subject_are_checked() -> None:
    counting = BusCodec()
    assert counting.decode(envelope()) is not None
    assert counting.decode(envelope(version=2)) is None
    assert counting.decode(msgspec.msgpack.encode([2, "a future layout"])) is None
    assert counting.decode(envelope(kind=99)) is None
    assert counting.decode(envelope(kind=Kind.BOOK)) is None
    assert counting.decode(envelope(subject="view.kraken.BTC-USDT")) is None
    assert counting.skipped == {"version": 2, "kind": 1, "invalid": 2}


def bad_view(**changes: object) -> ViewMsg:
    return msgspec.structs.replace(view_msg(), **changes)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (bad_view(venue="bin ance"), "venue name"),
        (bad_view(bids=((1, 0, 1, 0), (2, 0, 1, 0))), "ordered"),
        (bad_view(asks=((2, 0, 1, 0), (1, 0, 1, 0))), "ordered"),
        (bad_view(bids=((1, 0, 0, 0),)), "range"),
        (bad_view(bids=((1, ONE, 1, 0),)), "fraction"),
        (bad_view(bids=((-1, 0, 1, 0),)), "range"),
    ],
)
def test_invalid_views_are_rejected(body: ViewMsg, why: str) -> None:
    data = codec.encode("view.binance.BTC-USDT", 1, 1, 0, body)
    with pytest.raises(BusMessageError, match=why):
        codec.decode(data)


def test_invalid_books_are_rejected() -> None:
    one = (1, 0)
    level = ("a", 1, 0, 1, 0)
    ask = ("a", 2, 0, 1, 0)
    good = BookMsg("BTC-USDT", 1, ("a",), (level,), (ask,), one, None, 0)
    assert roundtrip("book.BTC-USDT", good).body == good
    for bad, why in [
        (msgspec.structs.replace(good, spread=(2, 0)), "spread"),
        (msgspec.structs.replace(good, spread=None), "spread"),
        (msgspec.structs.replace(good, asks=(), spread=one), "spread"),
        (msgspec.structs.replace(good, live=("b",)), "not live"),
        (msgspec.structs.replace(good, bids=(level, ("a", 2, 0, 1, 0)), spread=one), "ordered"),
    ]:
        with pytest.raises(BusMessageError, match=why):
            codec.decode(codec.encode("book.BTC-USDT", 1, 1, 0, bad))


def test_sequence_must_be_positive() -> None:
    with pytest.raises(BusMessageError, match="sequence"):
        codec.decode(codec.encode("view.binance.BTC-USDT", 1, 0, 0, view_msg()))


def test_parse_helpers_agree_with_core_fixed() -> None:
    value = parse("65000.12345678")
    assert codec.join_fixed(*codec.split_fixed(value)) == value
