"""What the client prints: JSON lines and the table, built from received Summaries."""

from __future__ import annotations

import json

from rich.console import Console

from dragonflybot.cli.display import RateMeter, render_table, summary_json
from dragonflybot.core.fixed import parse
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.service.book_client import ReceivedSummary
from dragonflybot.service.summary import to_summary

BOOK = Consolidated(
    (MergedLevel("binance", parse("0.05043"), parse("1.5")),),
    (MergedLevel("bitstamp", parse("0.05045"), parse("0.25")),),
    parse("0.00002"),
)


def received(book: Consolidated, number: int = 1, recv_ns: int = 0) -> ReceivedSummary:
    return ReceivedSummary(to_summary(book), number, recv_ns)


def test_json_line_carries_the_summary_fields() -> None:
    line = json.loads(summary_json(received(BOOK, 9)))
    assert line == {
        "n": 9,
        "spread": 0.00002,
        "bids": [{"exchange": "binance", "price": 0.05043, "amount": 1.5}],
        "asks": [{"exchange": "bitstamp", "price": 0.05045, "amount": 0.25}],
    }


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
    assert "a side is empty" in render(received(Consolidated.empty()))
    assert "waiting for the first book" in render(None)


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
