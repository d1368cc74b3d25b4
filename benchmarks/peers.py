"""Floors and peers on the same diff frames: msgspec decode, our listener path, cryptofeed.

All three run in this process on the same frames (``benchmarks.frames.diff_sets``: the
recorded Binance and Bitstamp diffs when ``DRAGONFLYBOT_SAMPLES`` is set, else simulated),
with no sockets, so they compare per-frame processing only:

* *msgspec decode only* — the feed's own wire Structs (``venues.binance.Frame`` +
  ``DepthUpdate``, ``venues.bitstamp.Envelope`` + ``BookData``): the floor of any parser.
* *dragonflybot listener* — what a feed's listener does per frame: the venue protocol's
  ``receive`` (decode, validate, sequence check, apply to the full-depth book), then, on a
  book change, ``ViewPublisher.publish`` (top-10 read of both sides, change test, the
  ``VenueView`` into the latest-value slot the aggregator reads).
* *cryptofeed 2.4.1* — its own ``message_handler`` for the venue (``json.loads`` with
  ``Decimal``, its sequence check, its ``order_book`` C books, its callbacks) and a
  callback reading the top 10 of both sides.

Each repeat starts from fresh books loaded from the symbol's REST snapshot (untimed, like
cryptofeed's ``_snapshot``); the timed frames are those received after the snapshot.

Coinbase and Bybit (book snapshot on the stream) are measured the same way on simulated
frames (``benchmarks.frames.stream_set``): the floor and our listener path, from a book
synced on the stream's snapshot (untimed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, Final

import msgspec

from benchmarks.frames import STREAM_VENUES, DiffSet, StreamSet, SymbolFrames, diff_sets, stream_set
from benchmarks.harness import Options, Suite, Table, Timing, measure
from dragonflybot.core.view import VenueUpdate
from dragonflybot.feed.publisher import ViewPublisher
from dragonflybot.feed.stats import FeedStats
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues import binance, bitstamp, bybit, coinbase
from dragonflybot.venues.base import BookChanged, FetchSnapshot, VenueProtocol

TOP: Final = 10


def timed_frames(sym: SymbolFrames) -> list[str]:
    return [text for t, text in sym.frames if t >= sym.snapshot_time_ns]


# --- msgspec floor ------------------------------------------------------------------------

_bn_frame = msgspec.json.Decoder(binance.Frame)
_bn_update = msgspec.json.Decoder(binance.DepthUpdate)
_bs_envelope = msgspec.json.Decoder(bitstamp.Envelope)
_bs_book = msgspec.json.Decoder(bitstamp.BookData)


def decode_only(data: DiffSet) -> Callable[[list[str]], None]:
    if data.venue == "binance":

        def run(frames: list[str]) -> None:
            for text in frames:
                _bn_update.decode(_bn_frame.decode(text).data)

    else:

        def run(frames: list[str]) -> None:
            for text in frames:
                _bs_book.decode(_bs_envelope.decode(text).data)

    return run


# --- our listener path --------------------------------------------------------------------


def _protocol(venue: str, symbol: str) -> VenueProtocol:
    if venue == "binance":
        return binance.BinanceProtocol(symbol.lower(), mode="depth")
    return bitstamp.BitstampProtocol(symbol, mode="depth")


def synced_listener(data: DiffSet, sym: SymbolFrames) -> tuple[VenueProtocol, ViewPublisher]:
    """A protocol synced on the snapshot (frames before it buffered and applied as a feed
    would), and the feed's change-forwarder writing into a latest-value slot."""
    protocol = _protocol(data.venue, sym.symbol)
    pending = [e for e in protocol.connection_made() if isinstance(e, FetchSnapshot)]
    for t, text in sym.frames:
        if t >= sym.snapshot_time_ns:
            break
        pending += [e for e in protocol.receive(text) if isinstance(e, FetchSnapshot)]
    if not pending:
        # The protocol asks for the snapshot at its first frame: give it one.
        pending += [e for e in protocol.receive(sym.frames[0][1]) if isinstance(e, FetchSnapshot)]
    protocol.snapshot_received(pending[-1].token, sym.snapshot.encode())
    publisher = ViewPublisher(data.venue, TOP, Mailbox[VenueUpdate](), FeedStats())
    return protocol, publisher


def listener_path(frames: list[str], protocol: VenueProtocol, publisher: ViewPublisher) -> int:
    receive = protocol.receive
    publish = publisher.publish
    changes = 0
    for text in frames:
        for event in receive(text):
            if type(event) is BookChanged:
                publish(protocol, event.event_time_ms, 0)
                changes += 1
                break
    return changes


# --- cryptofeed ---------------------------------------------------------------------------


def cryptofeed_version() -> str | None:
    try:
        from importlib.metadata import version

        import cryptofeed  # noqa: F401
    except Exception:  # an sdist that did not build, or a broken import: reported, skipped
        return None
    return version("cryptofeed")


class CryptofeedRig:
    """One cryptofeed feed object per venue, driven through its own ``message_handler``."""

    def __init__(self, data: DiffSet) -> None:
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import Binance, Bitstamp
        from cryptofeed.symbols import Symbols

        cls: Any = Binance if data.venue == "binance" else Bitstamp
        # No network here: give cryptofeed its symbol table instead of letting it fetch one.
        names = {s.symbol: s.symbol for s in data.symbols}
        Symbols.set(cls.id, names, {"tick_size": {}, "instrument_type": {}})
        self.reads = 0

        async def top10(book: Any, receipt: float) -> None:
            bids, asks = book.book.bids, book.book.asks
            [bids.index(i) for i in range(min(TOP, len(bids)))]
            [asks.index(i) for i in range(min(TOP, len(asks)))]
            self.reads += 1

        self.feed = cls(symbols=list(names), channels=[L2_BOOK], callbacks={L2_BOOK: top10})
        if not hasattr(self.feed, "last_update_id"):
            self.feed.last_update_id = {}  # Bitstamp makes it in ``subscribe``
        self.venue = data.venue
        self.loop = asyncio.new_event_loop()

    def load(self, sym: SymbolFrames) -> None:
        """What cryptofeed's ``_snapshot`` does with the REST body, minus the request."""
        from cryptofeed.types import OrderBook

        feed = self.feed
        body = msgspec.json.decode(sym.snapshot)
        std = feed.exchange_symbol_to_std_symbol(sym.symbol)
        feed.last_update_id[std] = body["lastUpdateId" if self.venue == "binance" else "timestamp"]
        feed._l2_book[std] = OrderBook(
            feed.id,
            std,
            max_depth=feed.max_depth,
            bids={Decimal(p): Decimal(a) for p, a in body["bids"]},
            asks={Decimal(p): Decimal(a) for p, a in body["asks"]},
        )

    def run(self, frames: list[str]) -> None:
        handler = self.feed.message_handler

        async def go() -> None:
            for text in frames:
                await handler(text, None, 0.0)

        coro: Coroutine[Any, Any, None] = go()
        self.loop.run_until_complete(coro)


# --- the suite ----------------------------------------------------------------------------


def _per_frame(
    run: Callable[[], None], setup: Callable[[], object], frames: int, o: Options
) -> Timing:
    return measure(lambda _: run(), setup, ops=frames, options=o)


def compare(data: DiffSet, options: Options, cf_version: str | None) -> list[list[str]]:
    syms = [s for s in data.symbols if timed_frames(s)]
    per_sym = [timed_frames(s) for s in syms]
    count = sum(len(f) for f in per_sym)
    rows: list[list[str]] = []

    decode = decode_only(data)
    t_decode = measure(
        lambda _: [decode(f) for f in per_sym], lambda: None, ops=count, options=options
    )

    def ours_setup() -> list[tuple[VenueProtocol, ViewPublisher]]:
        return [synced_listener(data, s) for s in syms]

    def ours(state: list[tuple[VenueProtocol, ViewPublisher]]) -> None:
        for (protocol, publisher), frames in zip(state, per_sym, strict=True):
            listener_path(frames, protocol, publisher)

    t_ours = measure(ours, ours_setup, ops=count, options=options)
    label = f"{data.label} ({len(syms)} books, {count} frames)"
    rows.append(
        [label, "msgspec decode only (floor)", t_decode.us(), f"{t_decode.per_second:,.0f}", "—"]
    )
    rows.append(
        [label, "dragonflybot listener, top-10", t_ours.us(), f"{t_ours.per_second:,.0f}", "—"]
    )
    if cf_version is None:
        rows.append([label, "cryptofeed 2.4.1", "not importable: skipped", "—", "—"])
        return rows
    rig = CryptofeedRig(data)

    def cf_setup() -> None:
        for s in syms:
            rig.load(s)

    def cf(_: None) -> None:
        for frames in per_sym:
            rig.run(frames)

    t_cf = measure(cf, cf_setup, ops=count, options=options)
    rows.append(
        [label, f"cryptofeed {cf_version}, top-10", t_cf.us(), f"{t_cf.per_second:,.0f}", "1.00x"]
    )
    rows[1][4] = f"{t_cf.median / t_ours.median:.2f}x"
    rows[0][4] = f"{t_cf.median / t_decode.median:.2f}x"
    rig.loop.close()
    return rows


# --- venues whose snapshot comes on the stream -------------------------------------------

_cb_frame = msgspec.json.Decoder(coinbase.L2Frame)
_by_frame = msgspec.json.Decoder(bybit.BookMessage)


def _stream_protocol(data: StreamSet) -> VenueProtocol:
    if data.venue == "coinbase":
        return coinbase.CoinbaseProtocol("ETH-BTC")
    return bybit.BybitProtocol("ETH-BTC")


def synced_stream_listener(data: StreamSet) -> tuple[VenueProtocol, ViewPublisher]:
    """A protocol subscribed and synced on its stream's snapshot (untimed), and the feed's
    change-forwarder."""
    protocol = _stream_protocol(data)
    protocol.connection_made()
    protocol.receive(data.ack)
    protocol.receive(data.snapshot)
    assert protocol.has_book
    publisher = ViewPublisher(data.venue, TOP, Mailbox[VenueUpdate](), FeedStats())
    return protocol, publisher


def compare_stream(data: StreamSet, options: Options) -> list[list[str]]:
    frames = list(data.frames)
    count = len(frames)
    decoder = _cb_frame if data.venue == "coinbase" else _by_frame

    def decode(_: None) -> None:
        for text in frames:
            decoder.decode(text)

    t_decode = measure(decode, lambda: None, ops=count, options=options)

    def ours(state: tuple[VenueProtocol, ViewPublisher]) -> None:
        listener_path(frames, *state)

    t_ours = measure(ours, lambda: synced_stream_listener(data), ops=count, options=options)
    label = f"{data.label} (1 book, {count} frames)"
    return [
        [label, "msgspec decode only (floor)", t_decode.us(), f"{t_decode.per_second:,.0f}", "—"],
        [label, "dragonflybot listener, top-10", t_ours.us(), f"{t_ours.per_second:,.0f}", "—"],
    ]


def run(options: Options) -> list[Table]:
    cf_version = cryptofeed_version()
    table = Table(
        "Per-frame processing, in process (same frames for all)",
        "Diff frames handed over without sockets, from fresh books loaded from each symbol's "
        "REST snapshot; only frames received after the snapshot are timed. *vs cryptofeed*: "
        "cryptofeed's time per frame divided by this row's (higher is faster). Coinbase and "
        "Bybit: simulated frames (snapshot on the stream, then updates; no peer compared). "
        + ("" if cf_version else "cryptofeed could not be imported here, so it was skipped."),
        ["frames", "path", "µs/frame", "frames/s", "vs cryptofeed"],
    )
    for data in diff_sets(options.samples):
        table.rows.extend(compare(data, options, cf_version))
    # Coinbase and Bybit: no recordings of their current APIs exist (venues.md), so their
    # frames are the simulator's; cryptofeed is not compared on them (its Coinbase and
    # Bybit feeds speak other API versions).
    for venue in STREAM_VENUES:
        table.rows.extend(compare_stream(stream_set(venue, 2000), options))
    return [table]


SUITE = Suite(
    name="peers",
    title="Floors and peers: per-frame processing in process",
    run=run,
    packages=("msgspec", "cryptofeed", "order-book"),
)
