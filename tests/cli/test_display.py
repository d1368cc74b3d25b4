"""What the client prints: JSON lines and the table, built from received Summaries."""

from __future__ import annotations

import json

from rich.console import Console

from dragonflybot.aggregator.state import BookState, VenueHealth
from dragonflybot.cli.display import RateMeter, render_table, summary_json
from dragonflybot.core.fixed import parse
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.core.view import VenueView
from dragonflybot.service.book_client import ReceivedSummary
from dragonflybot.service.book_v1_encoding import Book, BookV1Encoder, WallClock
from dragonflybot.service.summary import to_summary

BOOK = Consolidated(
    (MergedLevel("binance", parse("0.05043"), parse("1.5")),),
    (MergedLevel("bitstamp", parse("0.05045"), parse("0.25")),),
    parse("0.00002"),
)


def received(book: Consolidated, number: int = 1, recv_ns: int = 0) -> ReceivedSummary:
    return ReceivedSummary(to_summary(book), number, recv_ns)


def test_json_line_carries_the_summary_fields() -> None:
    line = json.loads(summary_json(received(BOOK, 9), "ETH-BTC"))
    assert line == {
        "n": 9,
        "instrument": "ETH-BTC",
        "sequence": None,
        "exchange_time": None,
        "receive_time": None,
        "publish_time": None,
        "client_time": None,
        "spread": 0.00002,
        "spread_text": "0.00002",
        "crossed": False,
        "bids": [
            {
                "exchange": "binance",
                "price": 0.05043,
                "amount": 1.5,
                "price_text": "0.05043",
                "amount_text": "1.5",
            }
        ],
        "asks": [
            {
                "exchange": "bitstamp",
                "price": 0.05045,
                "amount": 0.25,
                "price_text": "0.05045",
                "amount_text": "0.25",
            }
        ],
        "venues": [],
    }


def v1_received(
    book: Consolidated, live: dict[str, int], excluded: tuple[VenueHealth, ...], number: int = 1
) -> ReceivedSummary:
    """A v1 Book as the server encodes it; the client's clock reads 2 s (monotonic)."""
    views = tuple(VenueView(v, (), (), None, recv_ns) for v, recv_ns in live.items())
    state = BookState(7, 1_900_000_000, book, frozenset(live), max(live.values()), excluded, views)
    clock = WallClock(2_000_000_000, 1_800_000_000_000_000_000)
    names = (*live, *(h.venue for h in excluded))
    encoded = BookV1Encoder("ETH-BTC", names).encode(state, 10, None, clock)
    return ReceivedSummary(Book.FromString(encoded), number, 0, v1=True, recv_time_ns=clock.time_ns)


def test_v1_json_line_carries_instrument_sequence_times_and_venues() -> None:
    stale = VenueHealth("bitstamp", "stale", 500_000_000, "stale")
    line = json.loads(summary_json(v1_received(BOOK, {"binance": 1_000_000_000}, (stale,), 4)))
    assert (line["n"], line["instrument"], line["sequence"]) == (4, "ETH-BTC", 7)
    assert line["client_time"] == "2027-01-15T08:00:00.000000000Z"
    assert line["bids"][0]["price_text"] == "0.05043" and line["spread_text"] == "0.00002"
    assert [(v["name"], v["state"]) for v in line["venues"]] == [
        ("binance", "live"),
        ("bitstamp", "stale"),
    ]
    assert line["venues"][0]["age"] == 1.0 and line["venues"][1]["reason"] == "stale"


def render(item: ReceivedSummary | None, rate: float = 12.5) -> str:
    console = Console(record=True, width=100)
    console.print(render_table(item, rate, "127.0.0.1:50051"))
    return console.export_text()


def test_table_shows_venue_per_level_spread_and_rate() -> None:
    text = render(received(BOOK, 3))
    for piece in ("binance", "bitstamp", "0.05043", "0.05045", "1.5", "0.25"):
        assert piece in text
    assert "spread 0.00002" in text and "12.5 updates/s" in text and "#3" in text


def test_table_for_an_empty_book_and_before_the_first_one() -> None:
    empty = render(received(Consolidated.empty()))
    assert "no live venue" in empty and "spread" not in empty
    one_side = Consolidated(BOOK.bids, (), None)
    assert "a side is empty" in render(received(one_side))
    assert "waiting for the first book" in render(None)


def test_prices_are_shown_at_fixed_decimals_and_a_crossed_book_is_flagged() -> None:
    crossed = Consolidated(
        (
            MergedLevel("binance", parse("0.0505"), parse("2")),
            MergedLevel("bitstamp", parse("0.05043"), parse("1.5")),
        ),
        (MergedLevel("bitstamp", parse("0.05045"), parse("0.25")),),
        -parse("0.00005"),
    )
    text = render(received(crossed))
    assert "0.05050" in text and "0.05043" in text  # one number of decimals per column
    assert "2.00" in text and "0.25" in text
    assert "CROSSED: spread -0.00005" in text


def test_the_v1_table_shows_the_instrument_and_each_venue_state_and_age() -> None:
    down = VenueHealth("bitstamp", "down", None, "connection lost")
    text = render(v1_received(BOOK, {"binance": 1_500_000_000}, (down,)))
    assert "ETH-BTC @ 127.0.0.1:50051" in text and "seq 7" in text
    assert "binance live 0.5s" in text
    assert "bitstamp down never (connection lost)" in text


def test_rate_meter_counts_received_numbers_over_the_window() -> None:
    meter = RateMeter(window=1.0)
    assert meter.observe(received(BOOK, 1, 0)) == 0.0
    # Numbers 1..21 within half a second: 40 per second (20 more in 0.5 s).
    assert meter.observe(received(BOOK, 21, 500_000_000)) == 40.0
    # Much later: only the recent samples count.
    meter.observe(received(BOOK, 30, 5_000_000_000))
    assert meter.observe(received(BOOK, 40, 5_500_000_000)) == 20.0


def test_client_labels_the_table_with_the_canonical_instrument() -> None:
    import pytest

    from dragonflybot.cli.client import build_parser

    args = build_parser().parse_args(["--instrument", "ethbtc"])
    assert args.instrument == "ETH-BTC"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--instrument", "ethbusd"])  # ambiguous: a usage error
    console = Console(record=True, width=100)
    console.print(render_table(received(BOOK), 1.0, "ETH-BTC @ 127.0.0.1:50051"))
    assert "ETH-BTC @ 127.0.0.1:50051" in console.export_text()


def test_the_table_names_the_gateway_the_book_came_from() -> None:
    """With several ``--server``s the header names the one being followed, not the first."""
    console = Console(record=True, width=100)
    waiting = render_table(None, 0.0, "127.0.0.1:50051, 127.0.0.1:50052")
    console.print(waiting)
    assert "127.0.0.1:50051, 127.0.0.1:50052: waiting" in console.export_text()
    book = ReceivedSummary(to_summary(BOOK), 1, 0, server="127.0.0.1:50052")
    console.print(render_table(book, 1.0, "127.0.0.1:50051, 127.0.0.1:50052"))
    header = console.export_text().splitlines()[0]
    assert header.startswith("127.0.0.1:50052") and "50051" not in header
