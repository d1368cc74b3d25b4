"""How a client shows the book: a live rich table on a terminal, JSON lines elsewhere.

Both read the newest received Summary from a fan-out at their own pace (a
terminal redraws at most ``FPS`` times a second; a pipe takes lines as fast as
its reader does), so a slow display skips states instead of falling behind.
The functions that build a line or a table are pure, for tests.
"""

from __future__ import annotations

import collections
import datetime
import sys
from typing import Any, Final, TextIO

import attrs
import msgspec
import trio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.service.book_client import ReceivedSummary

FPS = 10


class RateMeter:
    """Summaries received per second over the last ``window`` seconds."""

    def __init__(self, window: float = 1.0) -> None:
        self._window_ns = int(window * 1e9)
        self._samples: collections.deque[tuple[int, int]] = collections.deque()

    def observe(self, received: ReceivedSummary) -> float:
        samples = self._samples
        samples.append((received.recv_ns, received.number))
        # Keep the samples inside the window, but always two to measure between.
        while len(samples) > 2 and received.recv_ns - samples[0][0] > self._window_ns:
            samples.popleft()
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) * 1e9 / (t1 - t0) if t1 > t0 else 0.0


_STATE_NAMES: Final = {1: "live", 2: "syncing", 3: "stale", 4: "down"}
_STATE_STYLES: Final = {"live": "green", "syncing": "yellow", "stale": "red", "down": "bold red"}


@attrs.frozen
class ShownVenue:
    name: str
    state: str
    age: float | None
    """Seconds since its last book change reached the server, ``None`` if none ever did."""
    reason: str


@attrs.frozen
class ShownBook:
    """What a client shows of one received book, whichever service sent it."""

    number: int
    instrument: str | None
    sequence: int | None
    bids: tuple[tuple[str, str, str], ...]
    """``(venue, price, amount)``, the numbers as plain decimal text, best first."""
    asks: tuple[tuple[str, str, str], ...]
    spread: float | None
    """``None`` when a side is empty (there is no spread, not a spread of 0)."""
    spread_text: str | None
    venues: tuple[ShownVenue, ...]
    """Each venue's state (v1 only; the Keyrock Summary says nothing of venues)."""
    times: dict[str, str | None]

    @property
    def crossed(self) -> bool:
        return self.spread is not None and self.spread < 0

    @property
    def live(self) -> bool:
        """Some venue quotes the book (v1: some venue is live)."""
        if self.venues:
            return any(v.state == "live" for v in self.venues)
        return bool(self.bids or self.asks)


def _num(value: float) -> str:
    """Plain decimal, no exponent: ``0.00002``, ``60000``, ``-0.0001``."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    when = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def _stamp(message: Any, field: str) -> str | None:
    return _iso(getattr(message, field).ToNanoseconds()) if message.HasField(field) else None


def shown(received: ReceivedSummary, instrument: str | None = None) -> ShownBook:
    """``received`` in one shape; ``instrument`` labels a Keyrock Summary (which has none)."""
    book = received.summary
    client_time = _iso(received.recv_time_ns) if received.recv_time_ns else None
    if received.v1:
        bids = tuple((lv.venue, lv.price_text, lv.amount_text) for lv in book.bids)
        asks = tuple((lv.venue, lv.price_text, lv.amount_text) for lv in book.asks)
        venues = tuple(
            ShownVenue(
                v.name,
                _STATE_NAMES.get(v.state, "unknown"),
                v.age.ToNanoseconds() / 1e9 if v.HasField("age") else None,
                v.reason,
            )
            for v in book.venues
        )
        both = bool(bids and asks)
        return ShownBook(
            received.number,
            book.instrument,
            book.sequence,
            bids,
            asks,
            book.spread if both else None,
            book.spread_text if both else None,
            venues,
            {
                "exchange_time": _stamp(book, "exchange_time"),
                "receive_time": _stamp(book, "receive_time"),
                "publish_time": _stamp(book, "publish_time"),
                "client_time": client_time,
            },
        )
    bids = tuple((lv.exchange, _num(lv.price), _num(lv.amount)) for lv in book.bids)
    asks = tuple((lv.exchange, _num(lv.price), _num(lv.amount)) for lv in book.asks)
    both = bool(bids and asks)
    return ShownBook(
        received.number,
        instrument,
        None,
        bids,
        asks,
        book.spread if both else None,
        _num(book.spread) if both else None,
        (),
        {
            "exchange_time": None,
            "receive_time": None,
            "publish_time": None,
            "client_time": client_time,
        },
    )


def book_json(book: ShownBook) -> bytes:
    """One JSON object (no newline): instrument, sequence, times, levels, venues."""

    def levels(side: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
        return [
            {
                "exchange": v,
                "price": float(p),
                "amount": float(a),
                "price_text": p,
                "amount_text": a,
            }
            for v, p, a in side
        ]

    return msgspec.json.encode(
        {
            "n": book.number,
            "instrument": book.instrument,
            "sequence": book.sequence,
            **book.times,
            "spread": book.spread,
            "spread_text": book.spread_text,
            "crossed": book.crossed,
            "bids": levels(book.bids),
            "asks": levels(book.asks),
            "venues": [
                {"name": v.name, "state": v.state, "age": v.age, "reason": v.reason}
                for v in book.venues
            ],
        }
    )


def summary_json(received: ReceivedSummary, instrument: str | None = None) -> bytes:
    """``book_json`` of a received book."""
    return book_json(shown(received, instrument))


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _fixed(text: str, decimals: int) -> str:
    """``text`` padded with zeros to ``decimals`` places, so a column's points line up."""
    if not text or decimals == 0:
        return text
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(decimals, '0')}"


def _age(age: float | None) -> str:
    if age is None:
        return "never"
    return f"{age:.1f}s" if age < 100 else f"{age:.0f}s"


def render_table(
    received: ReceivedSummary | None, rate: float, source: str, instrument: str | None = None
) -> Group:
    """The consolidated book as a two-sided table, one venue per level.

    Prices (and amounts) are shown at one number of decimals per column, so the
    decimal points line up; a crossed book is highlighted; an empty book says
    that no venue is live instead of showing a spread.
    """
    table = Table(expand=False, header_style="bold")
    for name, style, justify in (
        ("bid venue", "green", "left"),
        ("amount", "green", "right"),
        ("bid", "bold green", "right"),
        ("ask", "bold red", "right"),
        ("amount", "red", "right"),
        ("ask venue", "red", "left"),
    ):
        table.add_column(name, style=style, justify=justify)  # type: ignore[arg-type]
    if received is None:
        label = f"{instrument} @ {source}" if instrument else source
        return Group(Text(f"{label}: waiting for the first book..."), table)
    book = shown(received, instrument)
    source = received.server or source
    levels = book.bids + book.asks
    price_places = max((_decimals(p) for _, p, _ in levels), default=0)
    amount_places = max((_decimals(a) for _, _, a in levels), default=0)
    bids, asks = book.bids, book.asks
    for i in range(max(len(bids), len(asks))):
        bid = (
            (bids[i][0], _fixed(bids[i][2], amount_places), _fixed(bids[i][1], price_places))
            if i < len(bids)
            else ("",) * 3
        )
        ask = (
            (_fixed(asks[i][1], price_places), _fixed(asks[i][2], amount_places), asks[i][0])
            if i < len(asks)
            else ("",) * 3
        )
        table.add_row(*bid, *ask)
    header = Text()
    header.append(f"{book.instrument} @ {source}" if book.instrument else source, "bold")
    if not book.live:
        header.append("  no live venue", "bold yellow")
    elif book.spread_text is None:
        header.append("  no spread: a side is empty")
    elif book.crossed:
        header.append(
            f"  CROSSED: spread {_fixed(book.spread_text, price_places)}", "bold white on red"
        )
    else:
        header.append(f"  spread {_fixed(book.spread_text, price_places)}")
    header.append(f"  {rate:6.1f} updates/s  #{book.number}")
    if book.sequence is not None:
        header.append(f"  seq {book.sequence}")
    parts: list[Any] = [header]
    if book.venues:
        venues = Text("venues: ")
        for j, venue in enumerate(book.venues):
            if j:
                venues.append("  ")
            venues.append(f"{venue.name} ", "bold")
            venues.append(venue.state, _STATE_STYLES.get(venue.state, ""))
            venues.append(f" {_age(venue.age)}")
            if venue.reason and venue.state != "live":
                venues.append(f" ({venue.reason})", "dim")
        parts.append(venues)
    return Group(*parts, table)


async def print_json_lines(
    books: Fanout[ReceivedSummary],
    count: int,
    out: TextIO = sys.stdout,
    *,
    instrument: str | None = None,
) -> None:
    """Write each newest book as one JSON line until ``count`` lines (0: forever)."""
    written = 0
    with books.subscribe() as subscription:
        async for received in subscription:
            line = summary_json(received, instrument).decode() + "\n"
            await trio.to_thread.run_sync(_write, out, line)
            written += 1
            if count and written >= count:
                return


def _write(out: TextIO, line: str) -> None:
    out.write(line)
    out.flush()


async def show_live_table(
    books: Fanout[ReceivedSummary],
    count: int,
    source: str,
    console: Console | None = None,
    *,
    instrument: str | None = None,
) -> None:
    """Redraw the table on every new book, at most ``FPS`` times a second; stop after
    ``count`` books shown (0: never), as the JSON lines do."""
    meter = RateMeter()
    drawn = 0
    with (
        books.subscribe() as subscription,
        Live(
            render_table(None, 0.0, source, instrument),
            console=console,
            auto_refresh=False,
            redirect_stderr=False,
        ) as live,
    ):
        async for received in subscription:
            table = render_table(received, meter.observe(received), source, instrument)
            live.update(table, refresh=True)
            drawn += 1
            if count and drawn >= count:
                return
            await trio.sleep(1 / FPS)
