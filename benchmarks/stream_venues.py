"""Kraken and OKX: per-frame cost of the stream-synced protocols beside cryptofeed 2.4.1.

Both sides get the same book content from the real recordings (needs
``DRAGONFLYBOT_SAMPLES``), in process, no sockets, checksum verification on:

* *Kraken* — cryptofeed 2.4.1 speaks WebSocket v1, so it is fed the recorded v1
  frames (``KRAKEN.ws.50.0``, 10 pairs at depth 1000) with
  ``checksum_validation=True``; ``KrakenProtocol`` (v2) is fed the same updates
  rewritten as v2 messages by ``sim.kraken_v1`` (the pairs' precisions configured,
  Kraken's own checksums carried over, so every one is verified for real).
  cryptofeed reads the checksum of the first object of a frame only: it checks
  fewer frames than we do.
* *OKX* — both are fed ``OKX.ws.1.0`` (3 instruments, ``books``), ours one
  ``OkxProtocol`` per instrument, each frame to the protocol of its instrument
  (cryptofeed dispatches by ``instId`` inside its handler; ours is dispatched
  outside the timing, as a multi-instrument connection would).

Each repeat starts from books holding the snapshot message (untimed, like the
``peers`` suite's REST snapshot); the timed frames are the updates after it. Ours
is the listener path of the feed: ``receive`` (decode, validate, apply, cut to
depth, checksum) and, on a change, ``ViewPublisher.publish`` (top-10 read, change
test). cryptofeed's is its ``message_handler`` with a callback reading the top 10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

import attrs
import msgspec

from benchmarks.harness import Options, Suite, Table, measure
from benchmarks.peers import cryptofeed_version
from dragonflybot.core.view import VenueUpdate
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.stats import FeedStats
from dragonflybot.mailbox import Mailbox
from dragonflybot.sim import kraken_v1, kraken_wire, okx_wire
from dragonflybot.venues.base import BookChanged
from dragonflybot.venues.kraken import KrakenProtocol
from dragonflybot.venues.okx import OkxProtocol

TOP: Final = 10


@attrs.frozen
class Book:
    """One instrument's recorded frames: the snapshot, then the timed updates."""

    key: str
    """The venue's symbol in the recording (v1 pair, or OKX instId)."""
    snapshot: str
    updates: list[str]
    v2_snapshot: str = ""
    v2_updates: list[str] = attrs.Factory(list)
    precision: tuple[int, int] = (0, 0)


def _lines(path: Path) -> list[tuple[float, str]]:
    return list(kraken_v1.read_recording(iter(path.read_text().splitlines())))


def kraken_books(samples: Path) -> list[Book]:
    """Per pair: v1 snapshot and updates, and the same as v2 messages."""
    found: dict[str, Book] = {}
    rewriters: dict[str, kraken_v1.V2Rewriter] = {}
    for _, text in _lines(samples / "KRAKEN.ws.50.0"):
        v1 = kraken_v1.parse_book_frame(text)
        if v1 is None:
            continue
        rewriter = rewriters.setdefault(v1.pair, kraken_v1.V2Rewriter(v1.pair))
        v2 = rewriter.rewrite(v1)
        if v1.snapshot:
            assert rewriter.price_precision is not None and rewriter.qty_precision is not None
            precision = (rewriter.price_precision, rewriter.qty_precision)
            found[v1.pair] = Book(v1.pair, text, [], v2, [], precision)
        else:
            found[v1.pair].updates.append(text)
            found[v1.pair].v2_updates.append(v2)
    return list(found.values())


def okx_books(samples: Path) -> list[Book]:
    found: dict[str, Book] = {}
    for _, text in _lines(samples / "OKX.ws.1.0"):
        msg = msgspec.json.decode(text)
        arg = msg.get("arg", {}) if isinstance(msg, dict) else {}
        if arg.get("channel") != "books" or "action" not in msg:
            continue
        inst = arg["instId"]
        if msg["action"] == "snapshot":
            found[inst] = Book(inst, text, [])
        else:
            found[inst].updates.append(text)
    return list(found.values())


# --- ours ---------------------------------------------------------------------------------


def _kraken_protocol(book: Book) -> KrakenProtocol | OkxProtocol:
    pp, qp = book.precision
    protocol = KrakenProtocol(
        "x",
        symbol=kraken_v1.v2_symbol(book.key),
        depth=1000,
        price_precision=pp,
        qty_precision=qp,
    )
    protocol.connection_made()
    protocol.receive(kraken_wire.subscribe_ack(1, "book", protocol.symbol, 1000))
    assert protocol.receive(book.v2_snapshot) == [BookChanged(None)]
    return protocol


def _okx_protocol(book: Book) -> KrakenProtocol | OkxProtocol:
    protocol = OkxProtocol("x", symbol=book.key)
    protocol.connection_made()
    protocol.receive(okx_wire.subscribe_ack(book.key))
    assert type(protocol.receive(book.snapshot)[0]) is BookChanged
    return protocol


Listener = tuple[KrakenProtocol | OkxProtocol, ViewPublisher]


def listeners(venue: str, books: list[Book]) -> list[Listener]:
    out = []
    for book in books:
        protocol = _kraken_protocol(book) if venue == "kraken" else _okx_protocol(book)
        publisher = ViewPublisher(venue, TOP, Mailbox[VenueUpdate](), FeedStats())
        out.append((protocol, publisher))
    return out


def run_ours(state: list[Listener], frames: list[list[str]]) -> int:
    changes = 0
    for (protocol, publisher), texts in zip(state, frames, strict=True):
        receive = protocol.receive
        publish = publisher.publish
        for text in texts:
            for event in receive(text):
                if type(event) is BookChanged:
                    publish(protocol, event.event_time_ms, 0)
                    changes += 1
                    break
        if protocol.sync.counters.checksum_failures:
            raise AssertionError(f"{protocol.venue}: a recorded checksum failed")
    return changes


# --- cryptofeed ---------------------------------------------------------------------------


class CryptofeedRig:
    """cryptofeed's Kraken (v1) or OKX feed, driven through its own ``message_handler``."""

    def __init__(self, venue: str, books: list[Book]) -> None:
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import OKX, Kraken
        from cryptofeed.symbols import Symbols

        cls: Any = Kraken if venue == "kraken" else OKX
        # No network: cryptofeed's symbol table given, not fetched (std name -> venue's).
        if venue == "kraken":
            names = {kraken_v1.v2_symbol(b.key).replace("/", "-"): b.key for b in books}
        else:
            names = {b.key: b.key for b in books}
        Symbols.set(cls.id, names, {"tick_size": {}, "instrument_type": {}})
        self.reads = 0

        async def top10(book: Any, receipt: float) -> None:
            bids, asks = book.book.bids, book.book.asks
            [bids.index(i) for i in range(min(TOP, len(bids)))]
            [asks.index(i) for i in range(min(TOP, len(asks)))]
            self.reads += 1

        options: dict[str, Any] = {"checksum_validation": True}
        if venue == "kraken":
            options["max_depth"] = 1000
        self.feed = cls(
            symbols=list(names), channels=[L2_BOOK], callbacks={L2_BOOK: top10}, **options
        )
        self.loop = asyncio.new_event_loop()

    def feed_frames(self, frames: list[str]) -> None:
        handler = self.feed.message_handler

        async def go() -> None:
            for text in frames:
                await handler(text, None, 0.0)

        coro: Coroutine[Any, Any, None] = go()
        self.loop.run_until_complete(coro)


# --- the suite ----------------------------------------------------------------------------


def compare(venue: str, books: list[Book], options: Options, cf: str | None) -> list[list[str]]:
    ours_frames = [b.v2_updates if venue == "kraken" else b.updates for b in books]
    count = sum(len(f) for f in ours_frames)
    label = f"{venue} recorded ({len(books)} books, {count} updates)"
    t_ours = measure(
        lambda state: run_ours(state, ours_frames),
        lambda: listeners(venue, books),
        ops=count,
        options=options,
    )
    path = "dragonflybot v2 listener" if venue == "kraken" else "dragonflybot listener"
    rows = [[label, f"{path}, checksums verified, top-10", t_ours.us(), "—"]]
    if cf is None:
        rows.append([label, "cryptofeed 2.4.1", "not importable: skipped", "—"])
        return rows
    rig = CryptofeedRig(venue, books)
    snapshots = [b.snapshot for b in books]
    cf_frames = [text for b in books for text in b.updates]

    def cf_setup() -> None:
        rig.feed_frames(snapshots)

    t_cf = measure(lambda _: rig.feed_frames(cf_frames), cf_setup, ops=count, options=options)
    feed_name = "cryptofeed v1 frames" if venue == "kraken" else "cryptofeed"
    rows.append([label, f"{feed_name} {cf}, checksum_validation, top-10", t_cf.us(), "1.00x"])
    rows[0][3] = f"{t_cf.median / t_ours.median:.2f}x"
    rig.loop.close()
    return rows


def run(options: Options) -> list[Table]:
    cf = cryptofeed_version()
    table = Table(
        "Kraken and OKX per-frame processing, in process, checksums verified",
        "Recorded updates handed over without sockets after each book's snapshot message "
        "(untimed); Kraken: cryptofeed gets the v1 frames, dragonflybot the same updates as "
        "v2 messages. *vs cryptofeed*: cryptofeed's time per update divided by this row's.",
        ["frames", "path", "µs/update", "vs cryptofeed"],
    )
    if not options.samples:
        table.rows.append(["—", "needs DRAGONFLYBOT_SAMPLES (the recordings)", "—", "—"])
        return [table]
    samples = Path(options.samples)
    table.rows.extend(compare("kraken", kraken_books(samples), options, cf))
    table.rows.extend(compare("okx", okx_books(samples), options, cf))
    return [table]


SUITE = Suite(
    name="stream_venues",
    title="Kraken and OKX: stream-synced books beside cryptofeed",
    run=run,
    packages=("msgspec", "cryptofeed", "order-book"),
)
