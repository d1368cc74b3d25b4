"""Replay the real recordings through the sans-I/O protocols (needs DRAGONFLYBOT_SAMPLES).

For every recorded Binance symbol and Bitstamp pair the WebSocket frames are fed in
arrival order, and the REST snapshot is handed over once the protocol asked for it
and the replay has reached the moment it was received. After every applied diff
the protocol's book must equal a reference built here independently, with plain
dicts of ``Decimal`` and the documented rules written out longhand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from dragonflybot.core.fixed import SCALE
from dragonflybot.venues.base import (
    BookChanged,
    BookReset,
    Event,
    FetchSnapshot,
    Skipped,
    VenueProtocol,
)
from dragonflybot.venues.binance import BinanceProtocol
from dragonflybot.venues.bitstamp import BitstampProtocol

Book = dict[str, dict[Decimal, Decimal]]


@attrs.define
class Recording:
    frames: list[tuple[float, str]]
    """Received WebSocket frames: (receive time, text)."""
    snapshots: dict[str, tuple[float, str]]
    """REST bodies by the URL's symbol: (receive time, text)."""


def _split(line: str) -> tuple[str, str]:
    head, _, body = line.partition(": ")
    return head, body


def load(samples: Path, venue: str) -> Recording:
    frames: list[tuple[float, str]] = []
    ws_lines = (samples / f"{venue}.ws.1.0").read_text().splitlines()
    for line in ws_lines[1:]:  # the first line is the connect URL
        if not line.strip():
            continue
        head, body = _split(line)
        if " <- " in head:  # a frame we sent
            continue
        frames.append((float(head), body))
    snapshots: dict[str, tuple[float, str]] = {}
    for line in (samples / f"{venue}.http.0.0").read_text().splitlines():
        if not line.strip():
            continue
        head, body = _split(line)
        url, _, ts = head.partition(" -> ")
        if "symbol=" in url:
            key = url.split("symbol=")[1].split("&")[0].lower()
        else:
            key = url.rstrip("/").rsplit("/", 1)[1]
        snapshots[key] = (float(ts), body)
    return Recording(frames, snapshots)


def as_decimal(book: dict[int, int]) -> dict[Decimal, Decimal]:
    return {Decimal(p).scaleb(-SCALE): Decimal(a).scaleb(-SCALE) for p, a in book.items()}


def set_levels(side: dict[Decimal, Decimal], levels: list[list[str]]) -> None:
    for price, amount in levels:
        if Decimal(amount) == 0:
            side.pop(Decimal(price), None)
        else:
            side[Decimal(price)] = Decimal(amount)


def copy(book: Book) -> Book:
    return {"bids": dict(book["bids"]), "asks": dict(book["asks"])}


@attrs.define
class Reference:
    states: list[Book]
    """The book after the snapshot (index 0) and after each applied diff."""
    dropped: int
    applied: int


def binance_reference(rec: Recording, symbol: str) -> Reference:
    """Official rules: drop u <= L; first applied U <= L+1 <= u; then U == prev u + 1."""
    snap = json.loads(rec.snapshots[symbol][1])
    last_id = snap["lastUpdateId"]
    book: Book = {"bids": {}, "asks": {}}
    set_levels(book["bids"], snap["bids"])
    set_levels(book["asks"], snap["asks"])
    states, dropped, prev = [copy(book)], 0, None
    for _, text in rec.frames:
        msg = json.loads(text)
        if msg.get("stream") != f"{symbol}@depth@100ms":
            continue
        data = msg["data"]
        if data["u"] <= last_id:
            dropped += 1
            continue
        if prev is None:
            assert data["U"] <= last_id + 1 <= data["u"]
        else:
            assert data["U"] == prev + 1, "the recording has no gap"
        set_levels(book["bids"], data["b"])
        set_levels(book["asks"], data["a"])
        prev = data["u"]
        states.append(copy(book))
    return Reference(states, dropped, len(states) - 1)


def bitstamp_reference(rec: Recording, pair: str) -> Reference:
    """Drop diffs with microtimestamp <= the snapshot's; apply newer ones in order."""
    snap = json.loads(rec.snapshots[pair][1])
    newest = int(snap["microtimestamp"])
    book: Book = {"bids": {}, "asks": {}}
    set_levels(book["bids"], snap["bids"])
    set_levels(book["asks"], snap["asks"])
    states, dropped = [copy(book)], 0
    for _, text in rec.frames:
        msg = json.loads(text)
        if msg.get("event") != "data" or msg.get("channel") != f"diff_order_book_{pair}":
            continue
        micros = int(msg["data"]["microtimestamp"])
        if micros <= newest:
            dropped += 1
            continue
        set_levels(book["bids"], msg["data"]["bids"])
        set_levels(book["asks"], msg["data"]["asks"])
        newest = micros
        states.append(copy(book))
    return Reference(states, dropped, len(states) - 1)


def book_of(protocol: BinanceProtocol | BitstampProtocol) -> Book:
    full = protocol.full_book
    return {"bids": as_decimal(full.bids_dict()), "asks": as_decimal(full.asks_dict())}


def replay(
    protocol: BinanceProtocol | BitstampProtocol, rec: Recording, key: str, ref: Reference
) -> int:
    """Feed the recording; check the book at every change. Returns the checks made."""
    snap_time, snap_body = rec.snapshots[key]
    pending: list[FetchSnapshot] = []
    checks = 0

    def handle(events: list[Event]) -> None:
        nonlocal checks
        for event in events:
            assert not isinstance(event, (Skipped, BookReset)), event
            if isinstance(event, FetchSnapshot):
                pending.append(event)
            elif isinstance(event, BookChanged):
                assert protocol.has_book
                assert book_of(protocol) == ref.states[protocol.counters.applied]
                checks += 1

    def deliver() -> Iterator[None]:
        while pending:
            request = pending.pop()
            handle(protocol.snapshot_received(request.token, snap_body.encode()))
            yield

    handle(protocol.connection_made())
    for ts, frame in rec.frames:
        if pending and ts >= snap_time:
            for _ in deliver():
                pass
        handle(protocol.receive(frame))
    for _ in deliver():
        pass
    return checks


def binance_symbols(rec: Recording) -> list[str]:
    return sorted(rec.snapshots)


def test_binance_recording(samples_dir: Path) -> None:
    rec = load(samples_dir, "BINANCE")
    symbols = binance_symbols(rec)
    assert len(symbols) == 4
    applied = dropped = 0
    for symbol in symbols:
        ref = binance_reference(rec, symbol)
        protocol = BinanceProtocol(symbol, mode="depth")
        checks = replay(protocol, rec, symbol, ref)
        counters = protocol.counters
        assert (counters.applied, counters.dropped) == (ref.applied, ref.dropped), symbol
        assert (counters.gaps, counters.refetches, counters.skipped) == (0, 0, 0)
        assert counters.snapshots == 1
        assert checks >= 1
        assert book_of(protocol) == ref.states[-1]
        applied += counters.applied
        dropped += counters.dropped
    # The totals published in venues.md section 0.
    assert applied == 172
    assert applied + dropped == 177


def test_bitstamp_recording(samples_dir: Path) -> None:
    rec = load(samples_dir, "BITSTAMP")
    pairs = sorted(rec.snapshots)
    assert len(pairs) == 10
    applied = dropped = 0
    for pair in pairs:
        ref = bitstamp_reference(rec, pair)
        protocol = BitstampProtocol(pair, mode="depth")
        checks = replay(protocol, rec, pair, ref)
        counters = protocol.counters
        assert (counters.applied, counters.dropped) == (ref.applied, ref.dropped), pair
        # A pair without any diff in the recording (sgbeur) never needs its snapshot.
        has_diffs = ref.applied + ref.dropped > 0
        assert (counters.refetches, counters.skipped) == (0, 0)
        assert counters.snapshots == int(has_diffs)
        assert checks >= int(has_diffs)
        final = book_of(protocol)
        assert final == (ref.states[-1] if has_diffs else {"bids": {}, "asks": {}})
        if final["bids"] and final["asks"]:
            assert max(final["bids"]) < min(final["asks"]), f"{pair} book crossed"
        applied += counters.applied
        dropped += counters.dropped
    # The totals published in venues.md section 0.
    assert (dropped, applied) == (102, 615)


def _first_frames(rec: Recording, count: int) -> list[Any]:
    return [json.loads(text) for _, text in rec.frames[:count]]


@pytest.mark.parametrize("venue", ["BINANCE", "BITSTAMP"])
def test_recording_frames_all_decode(samples_dir: Path, venue: str) -> None:
    """No recorded frame is malformed for the protocol (whatever stream it belongs to)."""
    rec = load(samples_dir, venue)
    protocol: VenueProtocol = (
        BinanceProtocol("nknusdt", mode="depth")
        if venue == "BINANCE"
        else BitstampProtocol("ethusd", mode="depth")
    )
    protocol.connection_made()
    for _, frame in rec.frames:
        assert not any(isinstance(e, Skipped) for e in protocol.receive(frame)), frame[:200]
    assert protocol.counters.skipped == 0
    assert _first_frames(rec, 1)
