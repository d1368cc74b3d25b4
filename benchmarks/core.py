"""Core microbenchmarks: the consolidated merge, full-depth books, decimal parsing.

These are the per-message costs on the hot path, measured without I/O so a
regression in the pure core shows up here before it is lost in end-to-end noise.
Full-depth books replay the recorded venue diffs when ``DRAGONFLYBOT_SAMPLES`` is
set, and always a seeded simulated stream over a larger book; the recording is
decoded here, with msgspec and ``core.fixed.parse``, so this suite does not
depend on the feed code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from benchmarks.harness import Options, Suite, Table, Timing, measure, no_setup
from dragonflybot.core.book import FullDepthBook, Level, TopBook
from dragonflybot.core.fixed import parse, to_float
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueView

READ_DEPTH: Final = 10
MERGE_VENUES: Final = (2, 5, 10)
MERGE_DEPTHS: Final = (10, 50)
MERGE_CALLS: Final = 50
SEED: Final = 20211012

RawLevels = list[tuple[str, str]]


# --- the recordings' wire shapes (only the fields a book needs) --------------------------


class _BinanceDiff(msgspec.Struct):
    u: int
    b: RawLevels
    a: RawLevels


class _BinanceFrame(msgspec.Struct):
    stream: str
    data: _BinanceDiff


class _BinanceSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class _BitstampBook(msgspec.Struct):
    microtimestamp: str
    bids: RawLevels
    asks: RawLevels


class _BitstampFrame(msgspec.Struct):
    channel: str
    data: _BitstampBook


_binance_frame = msgspec.json.Decoder(_BinanceFrame)
_bitstamp_frame = msgspec.json.Decoder(_BitstampFrame)


def levels(raw: Iterable[tuple[str, str]]) -> list[Level]:
    return [Level(parse(price), parse(amount)) for price, amount in raw]


@dataclass(frozen=True)
class Replay:
    """Snapshots per symbol plus the diffs that follow them, in arrival order."""

    label: str
    snapshots: dict[str, tuple[list[Level], list[Level]]]
    frames: list[bytes]
    """Raw diff frames, for the decode-included measurement."""
    diffs: list[tuple[str, list[Level], list[Level]]]
    decode: Callable[[bytes], tuple[str, RawLevels, RawLevels]]
    recorded: bool

    @property
    def snapshot_levels(self) -> int:
        return sum(len(b) + len(a) for b, a in self.snapshots.values())

    @property
    def diff_levels(self) -> int:
        return sum(len(b) + len(a) for _, b, a in self.diffs)

    def fresh_books(self) -> dict[str, FullDepthBook]:
        books = {}
        for symbol, (bids, asks) in self.snapshots.items():
            book = FullDepthBook()
            book.load(bids, asks)
            books[symbol] = book
        return books


def recorded_lines(path: Path) -> Iterable[tuple[str, bytes]]:
    """``(prefix, frame)`` for received frames and REST bodies; sent frames are skipped.

    Lines are ``recv_time: JSON`` (received) or ``URL -> recv_time: JSON`` (REST);
    the frame is everything after the first ``": "``.
    """
    with path.open("rb") as lines:
        for line in lines:
            prefix, sep, frame = line.rstrip(b"\n").partition(b": ")
            if sep and b" <- " not in prefix:
                yield prefix.decode(), frame


def decode_binance(frame: bytes) -> tuple[str, RawLevels, RawLevels]:
    message = _binance_frame.decode(frame)
    return message.stream.partition("@")[0], message.data.b, message.data.a


def binance_replay(folder: Path) -> Replay:
    """Diffs older than the symbol's snapshot are dropped (Binance's ``u <= lastUpdateId``)."""
    snapshots = {}
    last_ids = {}
    for prefix, body in recorded_lines(folder / "BINANCE.http.0.0"):
        symbol = prefix.partition("symbol=")[2].partition("&")[0].lower()
        snap = msgspec.json.decode(body, type=_BinanceSnapshot)
        snapshots[symbol] = (levels(snap.bids), levels(snap.asks))
        last_ids[symbol] = snap.lastUpdateId
    frames = []
    for _, frame in recorded_lines(folder / "BINANCE.ws.1.0"):
        if b'"depthUpdate"' not in frame:
            continue
        message = _binance_frame.decode(frame)
        symbol = message.stream.partition("@")[0]
        if symbol in last_ids and message.data.u > last_ids[symbol]:
            frames.append(frame)
    return _replay("Binance recorded", snapshots, frames, decode_binance, recorded=True)


def decode_bitstamp(frame: bytes) -> tuple[str, RawLevels, RawLevels]:
    message = _bitstamp_frame.decode(frame)
    return message.channel.removeprefix("diff_order_book_"), message.data.bids, message.data.asks


def bitstamp_replay(folder: Path) -> Replay:
    """Diffs not newer than the symbol's snapshot (by microtimestamp) are dropped."""
    snapshots = {}
    taken_at = {}
    for prefix, body in recorded_lines(folder / "BITSTAMP.http.0.0"):
        symbol = prefix.split(" ")[0].rstrip("/").rpartition("/")[2]
        snap = msgspec.json.decode(body, type=_BitstampBook)
        snapshots[symbol] = (levels(snap.bids), levels(snap.asks))
        taken_at[symbol] = int(snap.microtimestamp)
    frames = []
    for _, frame in recorded_lines(folder / "BITSTAMP.ws.1.0"):
        if b'"diff_order_book_' not in frame or b'"event":"data"' not in frame:
            continue
        message = _bitstamp_frame.decode(frame)
        symbol = message.channel.removeprefix("diff_order_book_")
        if symbol in taken_at and int(message.data.microtimestamp) > taken_at[symbol]:
            frames.append(frame)
    return _replay("Bitstamp recorded", snapshots, frames, decode_bitstamp, recorded=True)


def simulated_replay(seed: int = SEED, depth: int = 1000, count: int = 2000) -> Replay:
    """A 1000-level book per side and diffs shaped like Binance's ``@depth@100ms``.

    Each diff changes 1-20 levels at an exponentially distributed distance from
    the top (mean 15 ticks), a quarter of them removals, as real diffs cluster
    near the touch.
    """
    rng = random.Random(seed)
    mid = 100_000  # in ticks of 0.01

    def price(ticks: int) -> str:
        return f"{ticks // 100}.{ticks % 100:02d}000000"

    def amount() -> str:
        units = rng.randint(1, 10**11)
        return f"{units // 10**8}.{units % 10**8:08d}"

    def level(side: int) -> tuple[str, str]:
        distance = min(int(rng.expovariate(1 / 15)), depth - 1)
        qty = "0.00000000" if rng.random() < 0.25 else amount()
        return price(mid + side * (1 + distance)), qty

    bids = [(price(mid - 1 - i), amount()) for i in range(depth) if rng.random() < 0.9]
    asks = [(price(mid + 1 + i), amount()) for i in range(depth) if rng.random() < 0.9]
    frames = []
    for update_id in range(1, count + 1):
        changes = [level(rng.choice((-1, 1))) for _ in range(rng.randint(1, 20))]
        data = {
            "U": update_id,
            "u": update_id,
            "b": [c for c in changes if c[0] < price(mid)],
            "a": [c for c in changes if c[0] > price(mid)],
        }
        frames.append(msgspec.json.encode({"stream": "sim@depth@100ms", "data": data}))
    snapshots = {"sim": (levels(bids), levels(asks))}
    return _replay("simulated", snapshots, frames, decode_binance, recorded=False)


def _replay(
    label: str,
    snapshots: dict[str, tuple[list[Level], list[Level]]],
    frames: list[bytes],
    decode: Callable[[bytes], tuple[str, RawLevels, RawLevels]],
    *,
    recorded: bool,
) -> Replay:
    diffs = []
    for frame in frames:
        symbol, bids, asks = decode(frame)
        diffs.append((symbol, levels(bids), levels(asks)))
    return Replay(label, snapshots, frames, diffs, decode, recorded)


# --- measurements ------------------------------------------------------------------------


def merge_views(rng: random.Random, venues: int, depth: int) -> list[VenueView]:
    """Venues quoting the same market a few ticks apart, so their sides interleave."""
    tick = parse("0.01")
    mid = parse("100")
    views = []
    for index in range(venues):
        offset = rng.randint(-3, 3) * tick
        bids = []
        asks = []
        bid = mid + offset - tick * rng.randint(1, 2)
        ask = mid + offset + tick * rng.randint(1, 2)
        for _ in range(depth):
            bids.append(Level(bid, parse(f"{rng.randint(1, 400) / 4:.2f}")))
            asks.append(Level(ask, parse(f"{rng.randint(1, 400) / 4:.2f}")))
            bid -= tick * rng.randint(1, 3)
            ask += tick * rng.randint(1, 3)
        views.append(VenueView(f"venue{index:02d}", tuple(bids), tuple(asks), None, 0))
    return views


def bench_merge(options: Options) -> Table:
    table = Table(
        "Consolidated merge",
        f"`merge(views, depth)` over venues quoting the same market a few ticks apart, each"
        f" with `depth` levels per side; one call merges both sides ({MERGE_CALLS} calls"
        " per sample).",
        ("venues", "depth", "µs/merge", "merges/s"),
    )
    rng = random.Random(SEED)
    for venues in MERGE_VENUES:
        for depth in MERGE_DEPTHS:
            views = merge_views(rng, venues, depth)

            def body(state: None, views: list[VenueView] = views, depth: int = depth) -> None:
                for _ in range(MERGE_CALLS):
                    merge(views, depth)

            timing = measure(body, no_setup, ops=MERGE_CALLS, options=options)
            table.rows.append((str(venues), str(depth), timing.us(), f"{timing.per_second:,.0f}"))
    return table


def replays(options: Options) -> list[Replay]:
    """The recordings when available, and always the simulated stream (a larger book)."""
    recorded = []
    if options.samples:
        folder = Path(options.samples)
        recorded = [binance_replay(folder), bitstamp_replay(folder)]
    return [*recorded, simulated_replay()]


def bench_top_book(options: Options) -> Table:
    table = Table(
        "Top-N snapshot book",
        "`TopBook.replace(bids, asks)` with a whole snapshot, as for each Binance `depth20`"
        " or Bitstamp `order_book` message (zero-amount filtering and the order check"
        " included), then the listener's two top reads.",
        ("levels per side", "µs/snapshot", "snapshots/s"),
    )
    rng = random.Random(SEED)
    for depth in (20, 100):
        view = merge_views(rng, 1, depth)[0]
        bids, asks = list(view.bids), list(view.asks)

        def body(book: TopBook, bids: list[Level] = bids, asks: list[Level] = asks) -> None:
            for _ in range(MERGE_CALLS):
                book.replace(bids, asks)
                book.top_bids(READ_DEPTH)
                book.top_asks(READ_DEPTH)

        timing = measure(body, TopBook, ops=MERGE_CALLS, options=options)
        table.rows.append((str(depth), timing.us(), f"{timing.per_second:,.0f}"))
    return table


def bench_full_depth(options: Options, data: list[Replay]) -> Table:
    table = Table(
        "Full-depth book",
        "Replaying diffs into full-depth books loaded from the REST snapshots (one book per"
        " symbol; diffs older than their snapshot dropped). *apply + read*: `apply(bids, asks)`"
        f" then `top_bids({READ_DEPTH})` and `top_asks({READ_DEPTH})`, the feed listener's"
        " per-message work; *decode + parse + apply + read* adds msgspec decoding of the"
        " frame and `fixed.parse` of every level. *load*: `load()` of every snapshot.",
        ("data", "books", "diffs (levels)", "measured", "µs/op", "ops/s"),
    )
    for replay in data:
        books = f"{len(replay.snapshots)} ({replay.snapshot_levels:,} levels)"
        count = f"{len(replay.diffs)} ({replay.diff_levels:,})"
        diffs = replay.diffs

        def apply_and_read(
            books: dict[str, FullDepthBook],
            diffs: list[tuple[str, list[Level], list[Level]]] = diffs,
        ) -> None:
            for symbol, bids, asks in diffs:
                book = books[symbol]
                book.apply(bids, asks)
                book.top_bids(READ_DEPTH)
                book.top_asks(READ_DEPTH)

        def decode_and_apply(books: dict[str, FullDepthBook], replay: Replay = replay) -> None:
            decode = replay.decode
            for frame in replay.frames:
                symbol, raw_bids, raw_asks = decode(frame)
                book = books[symbol]
                book.apply(levels(raw_bids), levels(raw_asks))
                book.top_bids(READ_DEPTH)
                book.top_asks(READ_DEPTH)

        def load(_: None, replay: Replay = replay) -> None:
            book = FullDepthBook()
            for bids, asks in replay.snapshots.values():
                book.load(bids, asks)

        per_diff = measure(apply_and_read, replay.fresh_books, ops=len(diffs), options=options)
        with_decode = measure(decode_and_apply, replay.fresh_books, ops=len(diffs), options=options)
        loading = measure(load, no_setup, ops=len(replay.snapshots), options=options)
        for what, timing, unit in (
            ("apply + read", per_diff, "diff"),
            ("decode + parse + apply + read", with_decode, "frame"),
            ("load", loading, "snapshot"),
        ):
            table.rows.append(
                (
                    replay.label,
                    books,
                    count,
                    f"{what} (per {unit})",
                    timing.us(),
                    f"{timing.per_second:,.0f}",
                )
            )
    return table


def bench_numbers(options: Options, data: list[Replay]) -> Table:
    data = [replay for replay in data if replay.recorded] or data
    texts = [text for replay in data for frame in replay.frames for text in _strings(replay, frame)]
    fixed_values = [parse(text) for text in texts]
    decimals = [Decimal(text) for text in texts]
    floats = [float(text) for text in texts]
    table = Table(
        "Decimal strings: fixed-point int vs Decimal vs float",
        f"Over the {len(texts):,} price and amount strings of the {data[0].label}"
        f"{' and ' + data[1].label if len(data) > 1 else ''} diffs. *parse*: string to value"
        " (`fixed.parse` validates the grammar too); *sort*: `sorted()` of all values"
        " (what ordering costs); *dict*: building a price-keyed dict (what a book's hashing"
        " costs); *to double*: what clients get (`fixed.to_float` vs `float(Decimal)`).",
        ("operation", "fixed (int), ns/value", "Decimal, ns/value", "float, ns/value"),
    )
    count = len(texts)

    def run(body: Callable[[None], object]) -> Timing:
        return measure(body, no_setup, ops=count, options=options)

    def each(fn: Callable[[str], object]) -> Callable[[None], object]:
        return lambda _: [fn(text) for text in texts]

    table.rows.append(
        ("parse", run(each(parse)).ns(), run(each(Decimal)).ns(), run(each(float)).ns())
    )
    table.rows.append(
        (
            "sort",
            run(lambda _: sorted(fixed_values)).ns(),
            run(lambda _: sorted(decimals)).ns(),
            run(lambda _: sorted(floats)).ns(),
        )
    )
    table.rows.append(
        (
            "dict",
            run(lambda _: dict.fromkeys(fixed_values, 1)).ns(),
            run(lambda _: dict.fromkeys(decimals, 1)).ns(),
            run(lambda _: dict.fromkeys(floats, 1)).ns(),
        )
    )
    table.rows.append(
        (
            "to double",
            run(lambda _: [to_float(v) for v in fixed_values]).ns(),
            run(lambda _: [float(v) for v in decimals]).ns(),
            "—",
        )
    )
    return table


def _strings(replay: Replay, frame: bytes) -> Iterable[str]:
    _, bids, asks = replay.decode(frame)
    for price, amount in (*bids, *asks):
        yield price
        yield amount


def run(options: Options) -> list[Table]:
    data = replays(options)
    return [
        bench_merge(options),
        bench_full_depth(options, data),
        bench_top_book(options),
        bench_numbers(options, data),
    ]


SUITE: Final = Suite(
    name="core",
    title="Core microbenchmarks",
    run=run,
    packages=("msgspec", "attrs"),
    code=("src/dragonflybot/core", "benchmarks/core.py", "benchmarks/harness.py"),
)
