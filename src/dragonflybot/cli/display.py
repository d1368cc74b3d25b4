"""How a client shows the book: a live rich table on a terminal, JSON lines elsewhere.

Both read the newest received Summary from a fan-out at their own pace (a
terminal redraws at most ``FPS`` times a second; a pipe takes lines as fast as
its reader does), so a slow display skips states instead of falling behind.
The functions that build a line or a table are pure, for tests.
"""

from __future__ import annotations

import collections
import sys
from typing import Any, TextIO

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


def _levels(levels: Any) -> list[dict[str, Any]]:
    return [{"exchange": lv.exchange, "price": lv.price, "amount": lv.amount} for lv in levels]


def summary_json(received: ReceivedSummary) -> bytes:
    """One JSON object (no newline): the Summary's fields plus the receive number."""
    summary = received.summary
    return msgspec.json.encode(
        {
            "n": received.number,
            "spread": summary.spread,
            "bids": _levels(summary.bids),
            "asks": _levels(summary.asks),
        }
    )


def _num(value: float) -> str:
    """Plain decimal, no exponent: ``0.00002``, ``60000``, ``-0.0001``."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def render_table(received: ReceivedSummary | None, rate: float, source: str) -> Group:
    """The consolidated book as a two-sided table, one venue per level."""
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
        return Group(Text(f"{source}: waiting for the first book..."), table)
    summary = received.summary
    bids, asks = list(summary.bids), list(summary.asks)
    for i in range(max(len(bids), len(asks))):
        bid = (
            (bids[i].exchange, _num(bids[i].amount), _num(bids[i].price))
            if i < len(bids)
            else ("",) * 3
        )
        ask = (
            (_num(asks[i].price), _num(asks[i].amount), asks[i].exchange)
            if i < len(asks)
            else ("",) * 3
        )
        table.add_row(*bid, *ask)
    if bids and asks:
        spread = f"spread {_num(summary.spread)}"
    else:
        spread = "no spread: a side is empty (no live venue quotes it)"
    header = Text.assemble(
        (source, "bold"), f"  {spread}  {rate:6.1f} updates/s  #{received.number}"
    )
    return Group(header, table)


async def print_json_lines(
    books: Fanout[ReceivedSummary], count: int, out: TextIO = sys.stdout
) -> None:
    """Write each newest Summary as one JSON line until ``count`` lines (0: forever)."""
    written = 0
    with books.subscribe() as subscription:
        async for received in subscription:
            line = summary_json(received).decode() + "\n"
            await trio.to_thread.run_sync(_write, out, line)
            written += 1
            if count and written >= count:
                return


def _write(out: TextIO, line: str) -> None:
    out.write(line)
    out.flush()


async def show_live_table(
    books: Fanout[ReceivedSummary], count: int, source: str, console: Console | None = None
) -> None:
    """Redraw the table on every new Summary, at most ``FPS`` times a second."""
    meter = RateMeter()
    shown = 0
    with (
        books.subscribe() as subscription,
        Live(
            render_table(None, 0.0, source),
            console=console,
            auto_refresh=False,
            redirect_stderr=False,
        ) as live,
    ):
        async for received in subscription:
            live.update(render_table(received, meter.observe(received), source), refresh=True)
            shown += 1
            if count and shown >= count:
                return
            await trio.sleep(1 / FPS)
