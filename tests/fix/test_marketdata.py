"""MarketDataRequest validation and the W/X/Y/U2 bodies, without a session."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from core.strategies import sides
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE, parse, to_str
from dragonflybot.core.liquidity import TradeSide, build_ladder, cost_to_trade
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView
from dragonflybot.fix.codec import Field, Message
from dragonflybot.fix.marketdata import (
    BookKind,
    Entry,
    FieldRejected,
    InstrumentInfo,
    MDRequest,
    MDRequestRejected,
    RejReason,
    SubscriptionType,
    apply_incremental,
    bbo_entries,
    cost_report_body,
    incremental_body,
    ladder_entries,
    parse_cost_request,
    parse_md_request,
    snapshot_body,
)
from dragonflybot.fix.session import RejectReason

SERVED = {"ETH-BTC": InstrumentInfo(10, 20), "BTC-USDT": InstrumentInfo(5, None)}


def md(*body: Field) -> Message:
    return Message(((35, "V"), *body))


def request(*extra: Field, sub: str = "1", depth: str = "0", update: str = "0") -> Message:
    return md(
        (262, "r1"),
        (263, sub),
        (264, depth),
        (265, update),
        *extra,
        (267, "2"),
        (269, "0"),
        (269, "1"),
        (146, "1"),
        (55, "ETH-BTC"),
    )


def test_a_full_request_parses() -> None:
    req = parse_md_request(request(update="1"), SERVED)
    assert req == MDRequest(
        "r1",
        SubscriptionType.SUBSCRIBE,
        "ETH-BTC",
        "ETH-BTC",
        BookKind.BBO,
        10,
        True,
        frozenset({"0", "1"}),
    )
    ladder = parse_md_request(request((5000, "1"), depth="3"), SERVED)
    assert ladder.book is BookKind.LADDER and ladder.depth == 3


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (request(depth="11"), RejReason.UNSUPPORTED_MARKET_DEPTH),
        (request(sub="7"), RejReason.UNSUPPORTED_SUBSCRIPTION_TYPE),
        (request(update="5"), RejReason.UNSUPPORTED_UPDATE_TYPE),
        (request((5000, "9")), RejReason.UNSUPPORTED_BOOK),
        (
            md((262, "r"), (263, "0"), (264, "0"), (267, "1"), (269, "2"), (55, "ETH-BTC")),
            RejReason.UNSUPPORTED_ENTRY_TYPE,
        ),
        (
            md((262, "r"), (263, "0"), (264, "0"), (267, "1"), (269, "0"), (55, "DOGE-EUR")),
            RejReason.UNKNOWN_SYMBOL,
        ),
        (
            md(
                (262, "r"),
                (263, "0"),
                (264, "0"),
                (267, "1"),
                (269, "0"),
                (55, "BTC-USDT"),
                (5000, "1"),
            ),
            RejReason.UNSUPPORTED_BOOK,
        ),
    ],
)
def test_unsupported_requests_get_a_market_data_reject(message: Message, reason: RejReason) -> None:
    with pytest.raises(MDRequestRejected) as caught:
        parse_md_request(message, SERVED)
    assert caught.value.reason is reason and caught.value.req_id in ("r", "r1")


@pytest.mark.parametrize(
    ("message", "tag", "reason"),
    [
        (md((263, "1")), 262, RejectReason.REQUIRED_TAG_MISSING),
        (md((262, "r"), (263, "0"), (264, "x")), 264, RejectReason.INCORRECT_DATA_FORMAT),
        (md((262, "r"), (263, "0"), (264, "1")), 267, RejectReason.REQUIRED_TAG_MISSING),
        (
            md((262, "r"), (263, "0"), (264, "1"), (267, "2"), (269, "0")),
            267,
            RejectReason.INCORRECT_NUM_IN_GROUP,
        ),
        (
            md((262, "r"), (263, "0"), (264, "1"), (267, "1"), (269, "0")),
            55,
            RejectReason.REQUIRED_TAG_MISSING,
        ),
    ],
)
def test_malformed_requests_get_a_session_reject(
    message: Message, tag: int, reason: RejectReason
) -> None:
    with pytest.raises(FieldRejected) as caught:
        parse_md_request(message, SERVED)
    assert caught.value.tag == tag and caught.value.reason is reason


def venue(name: str, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> VenueView:
    return VenueView(
        name,
        tuple(Level(parse(p), parse(a)) for p, a in bids),
        tuple(Level(parse(p), parse(a)) for p, a in asks),
        None,
        0,
    )


A = venue("binance", [("10", "1"), ("9", "2")], [("11", "1")])
B = venue("bitstamp", [("10", "3")], [("11.5", "2")])


def test_snapshot_body_lists_every_level_with_its_venue() -> None:
    req = parse_md_request(request(), SERVED)
    body = snapshot_body(req, bbo_entries(merge([A, B], 10), req))
    assert body[:3] == [(262, "r1"), (55, "ETH-BTC"), (268, "5")]
    assert body[3:8] == [(269, "0"), (270, "10"), (271, "3"), (275, "bitstamp"), (290, "1")]
    assert (290, "2") in body and body[-5:] == [
        (269, "1"),
        (270, "11.5"),
        (271, "2"),
        (275, "bitstamp"),
        (290, "2"),
    ]


def test_ladder_entries_sum_venues_per_price() -> None:
    req = parse_md_request(request((5000, "1")), SERVED)
    entries = ladder_entries(build_ladder([A, B], 20), req)
    assert entries[0] == Entry("0", 10 * ONE, 4 * ONE, "binance bitstamp")
    body = snapshot_body(req, entries)
    assert (5002, "binance bitstamp") in body and (275, "binance") not in body


def test_only_the_requested_sides_are_sent() -> None:
    msg = md((262, "r"), (263, "0"), (264, "1"), (267, "1"), (269, "1"), (55, "ethbtc"))
    req = parse_md_request(msg, SERVED)
    assert bbo_entries(merge([A, B], 10), req) == (Entry("1", 11 * ONE, ONE, "binance"),)


def test_cost_request_and_report() -> None:
    msg = Message(((35, "U1"), (262, "c1"), (55, "ETH-BTC"), (54, "1"), (38, "2")))
    req = parse_cost_request(msg, SERVED)
    assert req.side is TradeSide.BUY and req.quantity == 2 * ONE
    body = dict(cost_report_body(req, cost_to_trade([A, B], req.side, req.quantity)))
    assert body[5101] == "0" and body[6] == "11.25" and body[5104] == "11.5"
    assert body[5105] == "10.5" and body[5106] == "0.75" and body[5108] == "2"
    short = parse_cost_request(
        Message(((35, "U1"), (262, "c2"), (55, "ethbtc"), (54, "2"), (38, "100"))), SERVED
    )
    report = dict(cost_report_body(short, cost_to_trade([A, B], short.side, short.quantity)))
    assert report[5101] == "1" and report[5102] == "6" and report[5103] == "6"
    for bad, tag in (((54, "3"), 54), ((38, "-1"), 38), ((38, "0"), 38)):
        fields = {262: "c", 55: "ethbtc", 54: "1", 38: "1"}
        fields[bad[0]] = bad[1]
        with pytest.raises(FieldRejected) as caught:
            parse_cost_request(Message(((35, "U1"), *fields.items())), SERVED)
        assert caught.value.tag == tag
    with pytest.raises(MDRequestRejected):
        parse_cost_request(
            Message(((35, "U1"), (262, "c"), (55, "BTC-USDT"), (54, "1"), (38, "1"))), SERVED
        )


def changes_of(body: list[Field], book: BookKind) -> list[tuple[str, Entry]]:
    """Read an X body back the way a client does."""
    out: list[tuple[str, Entry]] = []
    market_tag = 275 if book is BookKind.BBO else 5002
    current: dict[int, str] = {}
    for tag, value in body[2:]:
        if tag == 279 and current:
            out.append(_entry(current, market_tag))
            current = {}
        current[tag] = value
    if current:
        out.append(_entry(current, market_tag))
    return out


def _entry(fields: dict[int, str], market_tag: int) -> tuple[str, Entry]:
    size = parse(fields[271]) if 271 in fields else 0
    return fields[279], Entry(fields[269], parse(fields[270]), size, fields[market_tag])


VENUES = ("binance", "bitstamp", "kraken")


@st.composite
def venue_views(draw: st.DrawFn) -> list[VenueView]:
    names = draw(st.lists(st.sampled_from(VENUES), unique=True, max_size=3))
    return [
        VenueView(
            n,
            draw(sides(descending=True, max_size=6)),
            draw(sides(descending=False, max_size=6)),
            None,
            0,
        )
        for n in names
    ]


@settings(max_examples=60)
@given(st.lists(venue_views(), min_size=2, max_size=6), st.sampled_from(BookKind))
def test_incrementals_rebuild_every_snapshot(states: list[list[VenueView]], book: BookKind) -> None:
    """Applying each X to what the client held gives exactly the next full snapshot."""
    req = MDRequest("r", SubscriptionType.SUBSCRIBE, "ETH-BTC", "ETH-BTC", book, 8, True)

    def entries(views: list[VenueView]) -> tuple[Entry, ...]:
        if book is BookKind.BBO:
            return bbo_entries(merge(views, 8), req)
        return ladder_entries(build_ladder(views, 8), req)

    held = entries(states[0])
    for views in states[1:]:
        new = entries(views)
        body = incremental_body(req, held, new)
        if body is None:
            assert new == held
            continue
        assert int(body[1][1]) == len(changes_of(body, book))
        held = apply_incremental(book, held, changes_of(body, book))
        assert held == new
        assert all(to_str(e.price) for e in held)
