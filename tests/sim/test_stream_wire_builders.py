"""The simulator's Kraken v2 and OKX frame builders: the venues' shapes, ids and checksums.

Round trips through the client protocols run in ``tests/venues/test_stream_sync_stateful.py``;
here the frames themselves are checked against the documented shapes
(``shared/venues.md`` 4.3 and 6.3-6.5).
"""

from __future__ import annotations

import json
import zlib

from dragonflybot.core.fixed import parse
from dragonflybot.sim import kraken_wire, okx_wire
from dragonflybot.venues import okx_checksum


def pa(price: str, qty: str) -> tuple[int, int]:
    return parse(price), parse(qty)


def test_kraken_book_messages() -> None:
    wire = kraken_wire.KrakenBookWire("BTC/USD", depth=10, price_precision=1, qty_precision=8)
    snap = json.loads(
        wire.snapshot([pa("45285.2", "0.001")], [pa("45285.3", "1.5")], time_ms=1_696_613_755_440)
    )
    assert snap["channel"] == "book" and snap["type"] == "snapshot"
    (data,) = snap["data"]
    assert data["symbol"] == "BTC/USD"
    assert data["bids"] == [{"price": 45285.2, "qty": 0.001}]
    assert data["timestamp"] == "2023-10-06T17:35:55.440000Z"
    # asks then bids, digits at the pair's precision: "452853" "150000000" "452852" "100000"
    assert data["checksum"] == zlib.crc32(b"452853150000000452852100000")
    update = json.loads(wire.update([pa("45285.2", "0")], [], corrupt=True))
    assert update["type"] == "update"
    assert update["data"][0]["bids"] == [{"price": 45285.2, "qty": 0}]
    assert update["data"][0]["checksum"] == (zlib.crc32(b"452853150000000") + 1) & 0xFFFFFFFF
    assert wire.top_bids() == []


def test_kraken_control_frames() -> None:
    ack = json.loads(kraken_wire.subscribe_ack(3, "book", "ETH/BTC", 10))
    assert ack["method"] == "subscribe" and ack["success"] and ack["req_id"] == 3
    assert ack["result"] == {"channel": "book", "symbol": "ETH/BTC", "depth": 10, "snapshot": True}
    error = json.loads(kraken_wire.error_reply("subscribe", 4, "Currency pair not supported"))
    assert error == {
        "method": "subscribe",
        "success": False,
        "error": "Currency pair not supported",
        "req_id": 4,
    }
    pairs = json.loads(kraken_wire.instrument_snapshot([("ETH/BTC", 5, 8)]))["data"]["pairs"]
    assert pairs[0]["symbol"] == "ETH/BTC" and pairs[0]["price_precision"] == 5


def test_okx_sequence_ids_and_checksum() -> None:
    wire = okx_wire.OkxBookWire("ETH-BTC", first_seq=100, step=5)
    snap = json.loads(wire.snapshot([pa("3366.1", "7"), pa("3366", "6")], [pa("3366.8", "9")]))
    assert snap["arg"] == {"channel": "books", "instId": "ETH-BTC"}
    (data,) = snap["data"]
    assert (data["prevSeqId"], data["seqId"]) == (-1, 105)
    assert data["bids"] == [["3366.1", "7", "0", "1"], ["3366", "6", "0", "1"]]
    text = "3366.1:7:3366.8:9:3366:6"
    assert data["checksum"] == okx_checksum.to_signed(zlib.crc32(text.encode()))
    update = json.loads(wire.update([], [pa("3368", "8")]))["data"][0]
    assert (update["prevSeqId"], update["seqId"]) == (105, 110)
    keepalive = json.loads(wire.keepalive())["data"][0]
    assert (keepalive["prevSeqId"], keepalive["seqId"]) == (110, 110)
    assert keepalive["asks"] == [] and keepalive["bids"] == []
    gap = json.loads(wire.update([], [pa("3369", "1")], gap=True))["data"][0]
    assert (gap["prevSeqId"], gap["seqId"]) == (115, 120)
    wire.restart(7)
    restart = json.loads(wire.update([], [pa("3370", "1")]))["data"][0]
    assert (restart["prevSeqId"], restart["seqId"]) == (120, 7)


def test_okx_without_checksum_or_ids() -> None:
    wire = okx_wire.OkxBookWire("ETH-BTC", checksum=False, sequenced=False)
    data = json.loads(wire.snapshot([pa("1", "1")], []))["data"][0]
    assert data["checksum"] == 0
    assert "seqId" not in data and "prevSeqId" not in data
    corrupt = json.loads(wire.update([pa("1", "2")], [], corrupt=True))["data"][0]
    assert corrupt["checksum"] != 0
    assert json.loads(okx_wire.subscribe_ack("ETH-BTC"))["event"] == "subscribe"
    assert okx_wire.pong() == "pong"
