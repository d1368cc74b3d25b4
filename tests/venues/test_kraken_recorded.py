"""Kraken's checksum on every recorded update (needs DRAGONFLYBOT_SAMPLES).

``KRAKEN.ws.50.0`` is v1 traffic: 10 pairs at depth 1000, 4,269 updates each with
Kraken's CRC32. Two checks on it, both through the shared ``kraken_checksum``:

* v1: a book of the exact wire strings (``v1_token``), cut to the depth after every
  frame, must give every recorded checksum;
* v2: the same frames rewritten as v2 messages (``sim.kraken_v1``) and fed to the
  production ``KrakenProtocol`` with the pairs' precisions must verify every
  checksum too, and its books must equal a reference built here with plain dicts.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from dragonflybot.core.book import FullDepthBook, WireLevel
from dragonflybot.core.fixed import parse as parse_fixed
from dragonflybot.sim import kraken_v1, kraken_wire
from dragonflybot.venues import kraken_checksum
from dragonflybot.venues.base import BookChanged, BookReset, SendText
from dragonflybot.venues.kraken import KrakenProtocol

RECORDED_CHECKSUMS = 4269
RECORDING = "KRAKEN.ws.50.0"


def frames(samples: Path) -> list[tuple[float, kraken_v1.V1Book]]:
    lines = (samples / RECORDING).read_text().splitlines()
    out = []
    for t, text in kraken_v1.read_recording(iter(lines)):
        book = kraken_v1.parse_book_frame(text)
        if book is not None:
            out.append((t, book))
    return out


def v1_levels(levels: list[tuple[str, str]]) -> list[WireLevel]:
    return [(parse_fixed(p), parse_fixed(q), kraken_checksum.v1_token(p, q)) for p, q in levels]


def v1_checksum(book: FullDepthBook) -> int:
    n = kraken_checksum.LEVELS
    return kraken_checksum.checksum(*reversed(book.wires(n)))


def test_every_recorded_v1_checksum_matches(samples_dir: Path) -> None:
    books: dict[str, FullDepthBook] = defaultdict(lambda: FullDepthBook(keep_wire=True))
    matched = 0
    for _, msg in frames(samples_dir):
        book = books[msg.pair]
        if msg.snapshot:
            book.load_wire(v1_levels(msg.bids), v1_levels(msg.asks))
        else:
            book.apply_wire(v1_levels(msg.bids), v1_levels(msg.asks))
        book.truncate(msg.depth)
        if msg.checksum is not None:
            assert v1_checksum(book) == msg.checksum, (msg.pair, matched)
            matched += 1
    assert matched == RECORDED_CHECKSUMS
    assert len(books) == 10


def test_a_corrupted_recorded_checksum_is_caught(samples_dir: Path) -> None:
    """The same replay with one quantity string altered in one update fails at that update."""
    books: dict[str, FullDepthBook] = defaultdict(lambda: FullDepthBook(keep_wire=True))
    updates = 0
    for _, msg in frames(samples_dir):
        book = books[msg.pair]
        if msg.snapshot:
            book.load_wire(v1_levels(msg.bids), v1_levels(msg.asks))
            continue
        levels = msg.asks or msg.bids
        updates += 1
        if updates == 100:
            # Pick a level that is in the top 10 after applying: change its last digit.
            price, qty = levels[0]
            altered = qty[:-1] + ("1" if qty[-1] != "1" else "2")
            levels[0] = (price, altered)
        book.apply_wire(v1_levels(msg.bids), v1_levels(msg.asks))
        book.truncate(msg.depth)
        if updates >= 100 and msg.checksum is not None and v1_checksum(book) != msg.checksum:
            return
    pytest.fail("the corrupted level never showed in a checksum")


def test_recording_rewritten_as_v2_verifies_in_the_protocol(samples_dir: Path) -> None:
    recorded = frames(samples_dir)
    rewriters: dict[str, kraken_v1.V2Rewriter] = {}
    protocols: dict[str, KrakenProtocol] = {}
    # The reference parses the v1 strings; the protocol parses the v2 JSON numbers.
    reference: dict[str, dict[str, dict[int, int]]] = {}
    verified = 0
    for _, msg in recorded:
        if msg.pair not in rewriters:
            rewriters[msg.pair] = kraken_v1.V2Rewriter(msg.pair)
        rewriter = rewriters[msg.pair]
        text = rewriter.rewrite(msg)
        if msg.pair not in protocols:
            assert rewriter.price_precision is not None and rewriter.qty_precision is not None
            protocol = KrakenProtocol(
                "x",
                symbol=rewriter.symbol,
                depth=msg.depth,
                price_precision=rewriter.price_precision,
                qty_precision=rewriter.qty_precision,
            )
            (sub,) = protocol.connection_made()
            assert isinstance(sub, SendText)
            protocol.receive(kraken_wire.subscribe_ack(1, "book", rewriter.symbol, msg.depth))
            assert protocol.subscribed
            protocols[msg.pair] = protocol
            reference[msg.pair] = {"bids": {}, "asks": {}}
        protocol = protocols[msg.pair]
        ref = reference[msg.pair]
        if msg.snapshot:
            ref["bids"].clear()
            ref["asks"].clear()
        for side, levels in (("bids", msg.bids), ("asks", msg.asks)):
            for p, q in levels:
                if parse_fixed(q) == 0:
                    ref[side].pop(parse_fixed(p), None)
                else:
                    ref[side][parse_fixed(p)] = parse_fixed(q)
        for side, worst_first in (("bids", False), ("asks", True)):
            while len(ref[side]) > msg.depth:  # Kraken's rule: out of depth is out of the book
                del ref[side][(max if worst_first else min)(ref[side])]
        before = protocol.counters.verified
        events = protocol.receive(text)
        assert [type(e) for e in events] == [BookChanged], events
        assert not any(isinstance(e, BookReset) for e in events)
        if not msg.snapshot:
            assert protocol.counters.verified == before + 1
            verified += 1
        assert protocol.full_book.bids_dict() == ref["bids"]
        assert protocol.full_book.asks_dict() == ref["asks"]
    assert verified == RECORDED_CHECKSUMS
    assert sum(p.counters.checksum_failures for p in protocols.values()) == 0
