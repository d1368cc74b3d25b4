"""OKX ``books`` on the real recording (needs DRAGONFLYBOT_SAMPLES).

``OKX.ws.1.0`` (May 2022) holds three instruments' ``books`` (3 snapshots and 287
updates, every one with OKX's signed CRC32, none with ``seqId`` yet) among tickers
and trades. Every frame is fed to one ``OkxProtocol`` per instrument, as on a shared
connection; each must verify all of its checksums and, after every message, hold
exactly the book of a reference written out longhand here (dicts of ``Decimal``,
and the checksum string built by the documented recipe).
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from dragonflybot.core.fixed import SCALE
from dragonflybot.sim import kraken_v1
from dragonflybot.venues.base import BookChanged, BookReset, Ignored, Resubscribe, SendText
from dragonflybot.venues.okx import OkxProtocol

RECORDED_CHECKSUMS = 290
INSTRUMENTS = ("BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP")


def received(samples: Path) -> list[str]:
    lines = (samples / "OKX.ws.1.0").read_text().splitlines()
    return [text for _, text in kraken_v1.read_recording(iter(lines))]


class Reference:
    """The documented rules, longhand: absolute sizes, "0" removes, last string kept."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def apply(self, data: dict[str, Any], snapshot: bool) -> None:
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for price, size, *_ in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, size)

    def checksum(self) -> int:
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:25]]
        asks = [self.asks[p] for p in sorted(self.asks)[:25]]
        parts: list[str] = []
        for i in range(25):
            if i < len(bids):
                parts += bids[i]
            if i < len(asks):
                parts += asks[i]
        crc = zlib.crc32(":".join(parts).encode())
        return crc - 2**32 if crc >= 2**31 else crc

    def side(self, which: str) -> dict[Decimal, Decimal]:
        side = self.bids if which == "bids" else self.asks
        return {p: Decimal(size) for p, (_, size) in side.items()}


def as_decimal(side: dict[int, int]) -> dict[Decimal, Decimal]:
    return {Decimal(p).scaleb(-SCALE): Decimal(a).scaleb(-SCALE) for p, a in side.items()}


def subscribed(inst_id: str) -> OkxProtocol:
    protocol = OkxProtocol("x", symbol=inst_id)
    (sub,) = protocol.connection_made()
    assert isinstance(sub, SendText)
    assert json.loads(sub.text) == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": inst_id}],
    }
    return protocol


def test_every_recorded_checksum_verifies_and_books_match_the_reference(
    samples_dir: Path,
) -> None:
    protocols = {inst: subscribed(inst) for inst in INSTRUMENTS}
    references = {inst: Reference() for inst in INSTRUMENTS}
    checked = 0
    for text in received(samples_dir):
        msg = json.loads(text)
        arg = msg.get("arg", {})
        for inst, protocol in protocols.items():
            events = protocol.receive(text)
            ours = arg.get("channel") == "books" and arg.get("instId") == inst
            if msg.get("event") == "subscribe" and ours:
                assert protocol.subscribed
                continue
            if not ours or "action" not in msg:
                assert all(isinstance(e, Ignored) for e in events), events
                continue
            ref = references[inst]
            (data,) = msg["data"]
            ref.apply(data, msg["action"] == "snapshot")
            assert ref.checksum() == data["checksum"], "the reference recipe itself"
            checked += 1
            assert [type(e) for e in events] == [BookChanged], events
            assert as_decimal(protocol.full_book.bids_dict()) == ref.side("bids")
            assert as_decimal(protocol.full_book.asks_dict()) == ref.side("asks")
            bids, asks = protocol.top(10)
            assert [b.price for b in bids] == sorted(
                (int(p.scaleb(SCALE)) for p in ref.bids), reverse=True
            )[:10]
            assert [a.price for a in asks] == sorted(int(p.scaleb(SCALE)) for p in ref.asks)[:10]
    assert checked == RECORDED_CHECKSUMS
    assert sum(p.counters.verified for p in protocols.values()) == RECORDED_CHECKSUMS
    assert all(p.synced for p in protocols.values())


def test_a_corrupted_recorded_checksum_resubscribes_that_instrument_only(
    samples_dir: Path,
) -> None:
    protocols = {inst: subscribed(inst) for inst in INSTRUMENTS}
    updates = 0
    reset_seen = False
    for text in received(samples_dir):
        msg = json.loads(text)
        if msg.get("action") == "update" and msg["arg"]["instId"] == "BTC-USDT":
            updates += 1
            if updates == 50:
                msg["data"][0]["checksum"] += 1
                text = json.dumps(msg)
        for inst, protocol in protocols.items():
            events = protocol.receive(text)
            if inst == "BTC-USDT" and updates == 50 and not reset_seen and "action" in msg:
                reset_seen = True
                assert [type(e) for e in events] == [BookReset, Resubscribe]
                assert isinstance(events[0], BookReset) and "checksum" in events[0].reason
                texts = [
                    json.loads(t)
                    for e in events[1:]
                    if isinstance(e, Resubscribe)
                    for t in e.frames
                ]
                assert [t["op"] for t in texts] == ["unsubscribe", "subscribe"]
                assert not protocol.has_book
    assert reset_seen
    btc = protocols["BTC-USDT"]
    assert not btc.has_book, "the recording has no new snapshot: the book stays discarded"
    assert btc.counters.checksum_failures == 1
    assert btc.counters.dropped > 0, "later updates are dropped, never applied"
    for inst in INSTRUMENTS[1:]:
        assert protocols[inst].has_book and protocols[inst].counters.checksum_failures == 0
