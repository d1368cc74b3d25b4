"""dragonflybot.v1 without sockets: the Book encoding and the servicer's checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import assume, given
from hypothesis import strategies as st
from purerpc import RpcFailedError, StatusCode

from dragonflybot.aggregator import BookState
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import VenueHealth
from dragonflybot.core.book import Level as BookLevel
from dragonflybot.core.fixed import ONE, parse, to_float, to_str
from dragonflybot.core.merge import Consolidated, MergedLevel, merge
from dragonflybot.core.view import VenueView
from dragonflybot.errors import ConfigError
from dragonflybot.service.book_v1 import BookServiceV1, InstrumentSource
from dragonflybot.service.book_v1_encoding import (
    NOT_HEARD_OF,
    STATE_CODES,
    Book,
    BookRequest,
    BookV1Encoder,
    ListInstrumentsRequest,
    VenueStatusRequest,
    WallClock,
    encode_body,
    encode_venues,
    venue_healths,
)
from dragonflybot.service.summary import EncodedBook

fixed_values = st.one_of(
    st.sampled_from([0, 1, ONE, ONE // 100, 5 * ONE // 10]),
    st.integers(min_value=0, max_value=10**40),
)
merged_levels = st.builds(
    MergedLevel, st.sampled_from(["binance", "bitstamp"]), fixed_values, fixed_values
)
books = st.builds(
    Consolidated,
    st.lists(merged_levels, max_size=12).map(tuple),
    st.lists(merged_levels, max_size=12).map(tuple),
    st.one_of(st.none(), st.just(0), st.integers(min_value=-(10**30), max_value=10**30)),
)
CLOCK = WallClock(monotonic_ns=5_000_000_000, time_ns=1_700_000_000_000_000_000)


def state_of(book: Consolidated, seq: int = 1, **kw: Any) -> BookState:
    return BookState(seq, kw.pop("published_ns", 4_000_000_000), book, frozenset(), None, **kw)


@given(books, st.integers(1, 20))
def test_doubles_and_exact_strings_agree(book: Consolidated, depth: int) -> None:
    """Invariant: each text is the exact value; each double is that value correctly rounded."""
    message = Book.FromString(encode_body("ETH-BTC", state_of(book), depth, None, CLOCK))
    assert message.instrument == "ETH-BTC" and message.sequence == 1
    for sent, levels in ((message.bids, book.bids), (message.asks, book.asks)):
        assert len(sent) == min(depth, len(levels))
        for wire, level in zip(sent, levels, strict=False):
            assert wire.venue == level.venue
            assert parse(wire.price_text) == level.price
            assert parse(wire.amount_text) == level.amount
            assert wire.price == to_float(level.price) == float(Decimal(wire.price_text))
            assert wire.amount == float(Decimal(wire.amount_text))
    if book.spread is None:
        assert (message.spread, message.spread_text) == (0.0, "")
    else:
        text = message.spread_text
        exact = -parse(text[1:]) if text.startswith("-") else parse(text)
        assert exact == book.spread
        assert message.spread == float(Decimal(message.spread_text))


@given(books, st.lists(st.sampled_from(["live", "syncing", "stale", "down"]), max_size=3))
def test_body_and_venues_concatenate_into_one_book(book: Consolidated, states: list[str]) -> None:
    healths = [
        VenueHealth(f"v{i}", s, None if i % 2 else 4_000_000_000, None if s == "live" else "x")  # type: ignore[arg-type]
        for i, s in enumerate(states)
    ]
    body = encode_body("ETH-BTC", state_of(book), 10, None, CLOCK)
    venues = encode_venues(healths, CLOCK)
    whole = Book.FromString(body + venues)
    expected = Book.FromString(body)
    expected.MergeFrom(Book.FromString(venues))
    assert whole == expected
    assert [v.name for v in whole.venues] == [h.venue for h in healths]
    assert [v.state for v in whole.venues] == [STATE_CODES[h.state] for h in healths]
    for wire, health in zip(whole.venues, healths, strict=True):
        assert wire.HasField("age") == (health.last_update_ns is not None)
        if health.last_update_ns is not None:
            assert wire.age.ToNanoseconds() == CLOCK.monotonic_ns - health.last_update_ns


def reference_book(
    instrument: str,
    state: BookState,
    depth: int,
    healths: list[VenueHealth],
    clock: WallClock,
) -> Any:
    """The same Book built field by field with protobuf (what the hand encoding must equal)."""
    book = state.book
    message = Book(instrument=instrument, sequence=state.seq)
    for wire, levels in ((message.bids, book.bids[:depth]), (message.asks, book.asks[:depth])):
        for venue, price, amount in levels:
            wire.add(
                venue=venue,
                price=to_float(price),
                amount=to_float(amount),
                price_text=to_str(price),
                amount_text=to_str(amount),
            )
    if book.spread is not None:
        message.spread = to_float(book.spread)
        message.spread_text = to_str(book.spread)
    event_ms = [v.event_time_ms for v in state.views if v.event_time_ms is not None]
    if event_ms:
        message.exchange_time.FromNanoseconds(max(event_ms) * 1_000_000)
    if state.newest_recv_ns is not None:
        message.receive_time.FromNanoseconds(clock.wall_ns(state.newest_recv_ns))
    message.publish_time.FromNanoseconds(clock.wall_ns(state.published_ns))
    for health in healths:
        status = message.venues.add(name=health.venue, state=STATE_CODES[health.state])
        if health.last_update_ns is not None:
            status.age.FromNanoseconds(max(0, clock.monotonic_ns - health.last_update_ns))
        if health.reason:
            status.reason = health.reason
    return message


names = st.text(max_size=140)
healths = st.builds(
    VenueHealth,
    names,
    st.sampled_from(["live", "syncing", "stale", "down"]),
    st.one_of(st.none(), st.integers(0, 10**19)),
    st.one_of(st.none(), names),
)
monotonic = st.integers(0, 10**19)


@given(
    st.builds(
        BookState,
        st.integers(0, 2**64 - 1),
        monotonic,
        books,
        st.just(frozenset()),
        st.one_of(st.none(), monotonic),
        st.just(()),
        st.lists(
            st.builds(
                VenueView,
                names,
                st.just(()),
                st.just(()),
                st.one_of(st.none(), st.integers(0, 2**42)),
                monotonic,
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.integers(1, 20),
    st.lists(healths, max_size=4),
    st.builds(WallClock, monotonic, st.integers(10**18, 2 * 10**18)),
    names,
)
def test_hand_encoding_is_byte_for_byte_protobufs(
    state: BookState, depth: int, venues: list[VenueHealth], clock: WallClock, instrument: str
) -> None:
    """Invariant: body + venues == protobuf's serialization of the whole Book.

    ``wall_ns`` may be negative for huge monotonic readings: then the reference's
    Timestamp refuses it too, and so must nothing here be sent; keep times valid.
    """
    assume(clock.wall_ns(0) >= 0)
    expected = reference_book(instrument, state, depth, venues, clock)
    data = encode_body(instrument, state, depth, None, clock) + encode_venues(venues, clock)
    assert data == expected.SerializeToString()


def view(venue: str, bid: str, ask: str, recv_ns: int, event_ms: int | None = None) -> VenueView:
    return VenueView(
        venue, (BookLevel(parse(bid), ONE),), (BookLevel(parse(ask), ONE),), event_ms, recv_ns
    )


def test_times_and_the_venue_filter() -> None:
    views = (
        view("binance", "1.0", "1.2", 3_000_000_000, 1_699_999_000_000),
        view("bitstamp", "1.1", "1.3", 3_500_000_000),
    )
    book = merge(views, 5)
    state = BookState(
        1, 4_000_000_000, book, frozenset({"binance", "bitstamp"}), 3_500_000_000, (), views
    )
    offset = CLOCK.time_ns - CLOCK.monotonic_ns
    full = Book.FromString(encode_body("ETH-BTC", state, 5, None, CLOCK))
    assert full.publish_time.ToNanoseconds() == 4_000_000_000 + offset
    assert full.receive_time.ToNanoseconds() == 3_500_000_000 + offset
    assert full.exchange_time.ToMilliseconds() == 1_699_999_000_000
    assert [b.venue for b in full.bids] == ["bitstamp", "binance"]
    assert full.spread_text == "0.1"
    only = Book.FromString(encode_body("ETH-BTC", state, 5, frozenset({"binance"}), CLOCK))
    assert [b.venue for b in only.bids] == ["binance"]
    assert only.spread_text == "0.2"
    assert only.receive_time.ToNanoseconds() == 3_000_000_000 + offset


def test_a_venue_not_heard_of_is_syncing_and_configured_order_is_kept() -> None:
    state = state_of(Consolidated.empty(), excluded=(VenueHealth("bitstamp", "stale", 7, "stale"),))
    healths = venue_healths(("bitstamp", "binance"), state)
    assert healths == [
        VenueHealth("bitstamp", "stale", 7, "stale"),
        VenueHealth("binance", "syncing", None, NOT_HEARD_OF),
    ]


def test_the_encoder_shares_bodies_of_the_newest_state_only() -> None:
    encoder = BookV1Encoder("ETH-BTC", ("binance",))
    one = state_of(Consolidated.empty(), seq=1)
    two = state_of(Consolidated.empty(), seq=2)
    encoder.encode(one, 5, None, CLOCK)
    encoder.encode(one, 3, None, CLOCK)
    assert len(encoder._bodies) == 2
    assert Book.FromString(encoder.encode(two, 5, None, CLOCK)).sequence == 2
    assert len(encoder._bodies) == 1
    assert Book.FromString(encoder.encode(one, 5, None, CLOCK)).sequence == 1  # late reader


# --- the servicer, called directly ------------------------------------------------------


def service(**kw: Any) -> tuple[BookServiceV1, Fanout[EncodedBook], Fanout[EncodedBook]]:
    eth, btc = Fanout[EncodedBook](), Fanout[EncodedBook]()
    return (
        BookServiceV1(
            [
                InstrumentSource("ETH-BTC", ("binance", "bitstamp"), 10, eth),
                InstrumentSource("BTC-USDT", ("binance",), 5, btc),
            ],
            **kw,
        ),
        eth,
        btc,
    )


async def first_error(stream: Any) -> RpcFailedError:
    with pytest.raises(RpcFailedError) as caught:
        await stream.__anext__()
    return caught.value


@pytest.mark.parametrize(
    ("request_fields", "code", "words"),
    [
        ({"instrument": "DOGE-USD"}, StatusCode.NOT_FOUND, ["'DOGE-USD'", "ETH-BTC, BTC-USDT"]),
        ({"instrument": "x" * 500}, StatusCode.NOT_FOUND, ["..."]),
        ({"instrument": ""}, StatusCode.INVALID_ARGUMENT, ["required", "ETH-BTC, BTC-USDT"]),
        (
            {"instrument": "ethbtc", "depth": 11},
            StatusCode.INVALID_ARGUMENT,
            ["maximum of 10", "1 to 10"],
        ),
        (
            {"instrument": "ETH-BTC", "venues": ["nosuch"]},
            StatusCode.INVALID_ARGUMENT,
            ["'nosuch'", "binance, bitstamp"],
        ),
        ({"instrument": "ETH-BTC", "max_rate": -1}, StatusCode.INVALID_ARGUMENT, ["max_rate"]),
        (
            {"instrument": "ETH-BTC", "max_rate": float("nan")},
            StatusCode.INVALID_ARGUMENT,
            ["max_rate"],
        ),
    ],
)
async def test_stream_book_refuses_with_a_message_saying_what_is_allowed(
    request_fields: dict[str, Any], code: int, words: list[str]
) -> None:
    servicer, _, _ = service()
    error = await first_error(servicer.StreamBook(BookRequest(**request_fields)))
    assert error.status.status_code == code
    for word in words:
        assert word in error.status.status_message


async def test_unknown_instrument_for_venue_status_is_not_found() -> None:
    servicer, _, _ = service()
    error = await first_error(servicer.StreamVenueStatus(VenueStatusRequest(instrument="nope")))
    assert error.status.status_code == StatusCode.NOT_FOUND


def test_naming_every_venue_is_no_filter() -> None:
    servicer, _, _ = service()
    instrument = servicer._resolve("ETH-BTC")
    every = BookRequest(instrument="ETH-BTC", venues=["bitstamp", "binance", "binance"])
    assert servicer._check(instrument, every) == (10, None)
    one = BookRequest(instrument="ETH-BTC", venues=["bitstamp"], depth=3)
    assert servicer._check(instrument, one) == (3, frozenset({"bitstamp"}))


async def test_list_instruments() -> None:
    servicer, _, _ = service()
    response = await servicer.ListInstruments(ListInstrumentsRequest())
    assert [(i.name, list(i.venues), i.max_depth) for i in response.instruments] == [
        ("ETH-BTC", ["binance", "bitstamp"], 10),
        ("BTC-USDT", ["binance"], 5),
    ]


def test_bad_configuration_is_refused() -> None:
    books = Fanout[EncodedBook]()
    with pytest.raises(ConfigError, match="twice"):
        BookServiceV1(
            [InstrumentSource("ETH-BTC", (), 5, books), InstrumentSource("ETH-BTC", (), 5, books)]
        )
    with pytest.raises(ConfigError, match="not canonical: 'ETH-BTC'"):
        BookServiceV1([InstrumentSource("ethbtc", (), 5, books)])
    with pytest.raises(ConfigError, match="max_depth"):
        BookServiceV1([InstrumentSource("ETH-BTC", (), 0, books)])
    with pytest.raises(ConfigError, match="max_rate"):
        BookServiceV1([], max_rate=float("nan"))


def published(books: Fanout[EncodedBook], state: BookState) -> None:
    books.publish(EncodedBook(state, b""))


async def test_stream_book_sends_the_newest_state_at_the_depth_asked() -> None:
    servicer, eth, _ = service()
    book = Consolidated(
        tuple(MergedLevel("binance", parse(f"1.{9 - i}"), ONE) for i in range(5)),
        (),
        None,
    )
    published(eth, state_of(book, seq=7))
    stream = servicer.StreamBook(BookRequest(instrument="eth-btc", depth=2))
    message = Book.FromString((await stream.__anext__()).SerializeToString())
    assert (message.instrument, message.sequence, len(message.bids)) == ("ETH-BTC", 7, 2)
    assert [v.name for v in message.venues] == ["binance", "bitstamp"]
    assert (servicer.stats.open, servicer.stats.opened, servicer.stats.sent) == (1, 1, 1)
    for seq in (8, 9):
        published(eth, state_of(book, seq=seq))
    assert Book.FromString((await stream.__anext__()).SerializeToString()).sequence == 9
    assert (servicer.stats.sent, servicer.stats.conflated) == (2, 1)
    eth.close()
    error = await first_error(stream)
    assert error.status.status_code == StatusCode.UNAVAILABLE
    assert servicer.stats.open == 0


async def test_venue_status_sends_the_current_states_then_each_change(
    autojump_clock: trio.testing.MockClock,
) -> None:
    servicer, eth, _ = service()
    stream = servicer.StreamVenueStatus(VenueStatusRequest(instrument="ETH-BTC"))
    first = [await stream.__anext__(), await stream.__anext__()]
    assert [(u.venue.name, u.venue.state) for u in first] == [
        ("binance", STATE_CODES["syncing"]),
        ("bitstamp", STATE_CODES["syncing"]),
    ]
    live = (view("binance", "1", "2", 1), view("bitstamp", "1", "2", 1))
    published(eth, state_of(Consolidated.empty(), seq=1, views=live))
    got = [await stream.__anext__(), await stream.__anext__()]
    assert {(u.venue.name, u.venue.state) for u in got} == {
        ("binance", STATE_CODES["live"]),
        ("bitstamp", STATE_CODES["live"]),
    }
    published(
        eth,
        state_of(
            Consolidated.empty(),
            seq=2,
            views=live[:1],
            excluded=(VenueHealth("bitstamp", "stale", 1, "stale"),),
        ),
    )
    change = await stream.__anext__()
    assert (change.instrument, change.venue.name, change.venue.state, change.venue.reason) == (
        "ETH-BTC",
        "bitstamp",
        STATE_CODES["stale"],
        "stale",
    )
    with trio.move_on_after(1):  # nothing else changed: nothing else is sent
        await stream.__anext__()
        pytest.fail("a message without a change")
    await stream.aclose()


async def test_max_rate_spaces_the_books_of_a_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    servicer, eth, _ = service(max_rate=100.0)
    published(eth, state_of(Consolidated.empty(), seq=1))
    capped = servicer.StreamBook(BookRequest(instrument="ETH-BTC", max_rate=4))
    uncapped = servicer.StreamBook(BookRequest(instrument="ETH-BTC", max_rate=1000))
    await capped.__anext__()
    await uncapped.__anext__()
    times = []
    for seq in (2, 3):
        published(eth, state_of(Consolidated.empty(), seq=seq))
        start = trio.current_time()
        await capped.__anext__()
        times.append(trio.current_time() - start)
    assert all(t >= 0.25 - 1e-9 for t in times)  # the client's cap, below the service's
    start = trio.current_time()
    await uncapped.__anext__()  # asks for more than the service allows: the service's cap
    assert 0.0 < trio.current_time() - start <= 0.01 + 1e-9
    await capped.aclose()
    await uncapped.aclose()


venue_states = st.lists(
    st.lists(
        st.builds(
            VenueHealth,
            st.sampled_from(["binance", "bitstamp"]),  # the aggregator hears only these
            st.sampled_from(["syncing", "stale", "down"]),
            st.just(1),
            st.sampled_from(["stale", "disconnected: eof", "resync: gap"]),
        ),
        max_size=3,
        unique_by=lambda h: h.venue,
    ),
    min_size=1,
    max_size=10,
)


@given(venue_states)
def test_venue_status_changes_are_exactly_the_transitions(states: list[list[VenueHealth]]) -> None:
    """Invariant: each update is a real change, and what a client saw last is the truth."""
    source = InstrumentSource("ETH-BTC", ("binance", "bitstamp"), 5, Fanout[EncodedBook]())
    sent: dict[str, tuple[str, str | None]] = {}
    seen: dict[str, tuple[int, str]] = {}
    for excluded in states:
        state = state_of(Consolidated.empty(), excluded=tuple(excluded))
        for update in BookServiceV1._changes(source, state, sent):
            now = (update.venue.state, update.venue.reason)
            assert seen.get(update.venue.name) != now
            seen[update.venue.name] = now
    truth = {
        h.venue: (STATE_CODES[h.state], h.reason or "") for h in venue_healths(source.venues, state)
    }
    assert seen == truth
