"""The venue frames every comparison runs on: recorded when available, else simulated.

Two shapes:

* ``DiffSet`` — per symbol, one REST snapshot and the diff frames that follow it, for
  the in-process comparisons (msgspec floor, our listener path, cryptofeed). From the
  recordings (``DRAGONFLYBOT_SAMPLES``) the snapshot is the recorded one and the frames
  are the recorded diffs of that symbol in arrival order; from the simulator they are the
  seeded market model rendered exactly as the simulated venue sends it.
* ``write_capture`` — a capture file of simulated traffic (a REST snapshot, then ``count``
  data frames) for the simulator's as-fast-as-possible replay, so the end-to-end runs
  measure the service, not the market model: replay only writes pre-rendered text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from dragonflybot.sim.binance_venue import COMBINED, BinanceProtocol, BinanceRenderer, depth_streams
from dragonflybot.sim.bitstamp_venue import BitstampProtocol, BitstampRenderer, book_channels
from dragonflybot.sim.bybit_venue import BybitProtocol as BybitSimProtocol
from dragonflybot.sim.bybit_venue import BybitRenderer
from dragonflybot.sim.bybit_venue import topics as bybit_topics
from dragonflybot.sim.capture import CaptureWriter, RecordKind
from dragonflybot.sim.coinbase_venue import CoinbaseProtocol as CoinbaseSimProtocol
from dragonflybot.sim.coinbase_venue import CoinbaseRenderer, CoinbaseSession
from dragonflybot.sim.coinbase_venue import products as coinbase_products
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.instruments import instrument_spec
from dragonflybot.sim.lineformat import read_lines
from dragonflybot.sim.market import FairPrice, MarketParams, VenueMarket
from dragonflybot.sim.protocol import Session
from dragonflybot.venues import bybit, coinbase

Venue = Literal["binance", "bitstamp"]
Mode = Literal["diff", "snapshot"]
SEED: Final = 20211012
EPOCH_NS: Final = 1_700_000_000_000_000_000
SNAPSHOT_AT: Final = 4000
"""Frame (per instrument) whose book a capture's REST snapshot shows (see write_capture)."""
SIM_DEPTH: Final = 200
"""Levels per side of the simulated books (the simulator's default)."""


@dataclass(frozen=True)
class SymbolFrames:
    symbol: str
    """Binance upper-case symbol or Bitstamp pair."""
    snapshot: str
    """REST body."""
    snapshot_time_ns: int
    """When the snapshot was taken: frames before it were buffered and dropped by a feed."""
    frames: tuple[tuple[int, str], ...]
    """(receive time ns, frame text) of the symbol's diff frames, in order."""


@dataclass(frozen=True)
class DiffSet:
    venue: Venue
    label: str
    symbols: tuple[SymbolFrames, ...]

    @property
    def frame_count(self) -> int:
        return sum(len(s.frames) for s in self.symbols)


def _recorded(samples: Path, venue: Venue) -> DiffSet:
    prefix = venue.upper()
    snapshots: dict[str, tuple[int, str]] = {}
    for record in read_lines(samples / f"{prefix}.http.0.0"):
        if record.kind is not RecordKind.REST:
            continue
        url = record.url
        if "symbol=" in url:
            key = url.split("symbol=")[1].split("&")[0].upper()
        else:
            key = url.rstrip("/").rsplit("/", 1)[1]
        snapshots.setdefault(key, (record.time_ns, record.payload.decode()))
    frames: dict[str, list[tuple[int, str]]] = {key: [] for key in snapshots}
    for record in read_lines(samples / f"{prefix}.ws.1.0"):
        if record.kind is not RecordKind.WS_IN:
            continue
        text = record.payload.decode()
        if venue == "binance":
            if '"depthUpdate"' not in text:
                continue
            key = text.split('"stream":"', 1)[1].split("@", 1)[0].upper()
        else:
            if '"diff_order_book_' not in text or '"event":"data"' not in text:
                continue
            key = text.split('"diff_order_book_', 1)[1].split('"', 1)[0]
        if key in frames:
            frames[key].append((record.time_ns, text))
    symbols = tuple(
        SymbolFrames(key, snapshots[key][1], snapshots[key][0], tuple(frames[key]))
        for key in sorted(snapshots)
        if frames[key]
    )
    return DiffSet(venue, f"{venue.capitalize()} recorded", symbols)


class _Generator:
    """The simulated venue's market and renderer, driven by hand (no sockets, no clock)."""

    def __init__(self, venue: Venue, instrument: str, mode: Mode) -> None:
        spec = instrument_spec(instrument)
        fair = FairPrice(SEED, spec)
        self.market = VenueMarket(
            venue, spec, fair, seed=SEED, epoch_ns=EPOCH_NS, params=MarketParams(depth=SIM_DEPTH)
        )
        markets = {instrument: self.market}
        self.binance: BinanceRenderer | None = None
        self.bitstamp: BitstampRenderer | None = None
        if venue == "binance":
            self.binance = BinanceRenderer(BinanceProtocol(depth_streams(spec)), markets)
            sym = spec.name
            stream = f"{sym}@depth@100ms" if mode == "diff" else f"{sym}@depth20@100ms"
            self.key = (stream, COMBINED)
            self.symbol = spec.name.upper()
        else:
            self.bitstamp = BitstampRenderer(BitstampProtocol(book_channels(spec)), markets)
            pair = spec.name
            self.key = (f"diff_order_book_{pair}" if mode == "diff" else f"order_book_{pair}", "")
            self.symbol = pair
        self.time_ns = EPOCH_NS

    def snapshot(self) -> str:
        if self.binance is not None:
            return self.binance.snapshot(self.market, 5000).decode()
        assert self.bitstamp is not None
        return self.bitstamp.snapshot(self.market).decode()

    def next_frame(self) -> str:
        self.time_ns += 100_000
        update = self.market.step(self.time_ns)
        renderer = self.binance or self.bitstamp
        assert renderer is not None
        return renderer.render(self.key, self.market, update).text


def simulated(venue: Venue, count: int, instrument: str = "ethbtc") -> DiffSet:
    gen = _Generator(venue, instrument, "diff")
    snapshot = gen.snapshot()
    frames = tuple((gen.time_ns, gen.next_frame()) for _ in range(count))
    sym = SymbolFrames(gen.symbol, snapshot, EPOCH_NS, frames)
    return DiffSet(venue, f"{venue.capitalize()} simulated", (sym,))


def diff_sets(samples: str | None, simulated_count: int = 2000) -> list[DiffSet]:
    """The recorded Binance and Bitstamp diffs when ``samples`` is set, else simulated ones."""
    if samples:
        return [_recorded(Path(samples), "binance"), _recorded(Path(samples), "bitstamp")]
    return [simulated("binance", simulated_count), simulated("bitstamp", simulated_count)]


def write_capture(
    path: Path, venue: Venue, instruments: tuple[str, ...], mode: Mode, count: int
) -> Path:
    """A capture of ``count`` simulated data frames per instrument (interleaved), ready to replay.

    The REST snapshot of each instrument is the book as of frame ``SNAPSHOT_AT`` (or a
    quarter of the stream if shorter): a replay serves that one snapshot however late the
    feed asks for it, and an as-fast-as-possible replay has sent thousands of frames by
    then, so a snapshot older than everything the feed buffered (or one so late that its
    buffer overflowed first) would never sync. Frames up to it are dropped by the feed.
    """
    path.unlink(missing_ok=True)  # the writer appends
    gens = [_Generator(venue, name, mode) for name in instruments]
    ws_url = "ws://simulated/stream" if venue == "binance" else "ws://simulated"
    now = time.time_ns()
    snapshot_at = min(SNAPSHOT_AT, count // 4)
    texts = []
    snapshots = []
    for i in range(count):
        if i == snapshot_at:
            snapshots = [gen.snapshot() for gen in gens]
        texts.append([gen.next_frame() for gen in gens])
    with CaptureWriter.open(path) as writer:
        writer.write(RecordKind.META, now, "", b'{"venue":"%s"}' % venue.encode())
        for gen, snapshot in zip(gens, snapshots, strict=True):
            if venue == "binance":
                url = f"http://simulated/api/v3/depth?symbol={gen.symbol}&limit=5000"
            else:
                url = f"http://simulated/api/v2/order_book/{gen.symbol}/"
            writer.write(RecordKind.REST, now, url, snapshot.encode())
        writer.write(RecordKind.CONNECT, now, ws_url, b"")
        for i, row in enumerate(texts):
            for j, text in enumerate(row):
                writer.write(RecordKind.WS_IN, now + i * 1000 + j, ws_url, text.encode())
    return path


# --- venues whose snapshot comes on the stream (Coinbase, Bybit) -------------------------

StreamVenue = Literal["coinbase", "bybit"]
STREAM_VENUES: Final[tuple[StreamVenue, ...]] = ("coinbase", "bybit")


@dataclass(frozen=True)
class StreamSet:
    """One book's stream: the subscription's ack and snapshot, then the update frames."""

    venue: StreamVenue
    label: str
    ack: str
    snapshot: str
    frames: tuple[str, ...]


class _StreamGenerator:
    """A stream venue's market and renderer, driven by hand (no sockets, no clock)."""

    def __init__(self, venue: StreamVenue, instrument: str) -> None:
        spec = instrument_spec(instrument)
        fair = FairPrice(SEED, spec)
        self.market = VenueMarket(
            venue, spec, fair, seed=SEED, epoch_ns=EPOCH_NS, params=MarketParams(depth=SIM_DEPTH)
        )
        markets = {instrument: self.market}
        self.coinbase: CoinbaseRenderer | None = None
        self.bybit: BybitRenderer | None = None
        self.session = CoinbaseSession()
        if venue == "coinbase":
            self.coinbase_protocol = CoinbaseSimProtocol(coinbase_products(spec))
            self.coinbase = CoinbaseRenderer(self.coinbase_protocol, markets)
            self.key = (next(iter(coinbase_products(spec))), "level2")
            self.ack = self._numbered(
                self.coinbase_protocol.on_text(
                    self.session,
                    coinbase.request("subscribe", self.key[0], coinbase.LEVEL2),
                    Faults(),
                ).replies[0]
            )
        else:
            bybit_protocol = BybitSimProtocol(bybit_topics(spec))
            self.bybit = BybitRenderer(bybit_protocol, markets)
            self.key = (bybit.topic_of(bybit.DEFAULT_DEPTH, bybit.symbol_of(spec.name)), "")
            self.ack = bybit_protocol.on_text(
                Session(), bybit.request("subscribe", self.key[0]), Faults()
            ).replies[0]
        self.time_ns = EPOCH_NS

    def _numbered(self, text: str) -> str:
        """Coinbase: the text as sent on one connection (``sequence_num`` written)."""
        frame = Outgoing(text, FrameKind.DIFF)
        return self.coinbase_protocol.number(self.session, frame).text

    def snapshot(self, *, numbered: bool = True) -> str:
        if self.coinbase is not None:
            text = self.coinbase.snapshot(self.key, self.market).text
            return self._numbered(text) if numbered else text
        assert self.bybit is not None
        return self.bybit.snapshot(self.key, self.market).text

    def next_frame(self, *, numbered: bool = True) -> str:
        self.time_ns += 100_000
        update = self.market.step(self.time_ns)
        if self.coinbase is not None:
            text = self.coinbase.render(self.key, self.market, update).text
            return self._numbered(text) if numbered else text
        assert self.bybit is not None
        return self.bybit.render(self.key, self.market, update).text


def stream_set(venue: StreamVenue, count: int, instrument: str = "ethbtc") -> StreamSet:
    """``count`` simulated update frames of one book, exactly as one connection gets them."""
    gen = _StreamGenerator(venue, instrument)
    snapshot = gen.snapshot()
    frames = tuple(gen.next_frame() for _ in range(count))
    return StreamSet(venue, f"{venue.capitalize()} simulated", gen.ack, snapshot, frames)


def write_stream_capture(
    path: Path, venue: StreamVenue, instruments: tuple[str, ...], count: int
) -> Path:
    """A capture of a stream venue: per instrument its snapshot, then ``count`` updates
    (interleaved). Coinbase frames are left unnumbered: the simulator writes each
    connection's ``sequence_num`` as it sends them, as the venue does."""
    path.unlink(missing_ok=True)  # the writer appends
    gens = [_StreamGenerator(venue, name) for name in instruments]
    ws_url = "ws://simulated" if venue == "coinbase" else "ws://simulated/v5/public/spot"
    now = time.time_ns()
    with CaptureWriter.open(path) as writer:
        writer.write(RecordKind.META, now, "", b'{"venue":"%s"}' % venue.encode())
        writer.write(RecordKind.CONNECT, now, ws_url, b"")
        for j, gen in enumerate(gens):
            text = gen.snapshot(numbered=False)
            writer.write(RecordKind.WS_IN, now + j, ws_url, text.encode())
        for i in range(count):
            for j, gen in enumerate(gens):
                text = gen.next_frame(numbered=False)
                writer.write(RecordKind.WS_IN, now + (i + 1) * 1000 + j, ws_url, text.encode())
    return path
