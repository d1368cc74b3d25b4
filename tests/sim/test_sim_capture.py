"""Capture files: round trip, crash tolerance, appending; the line-format import."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragonflybot.errors import DecodeError
from dragonflybot.sim.capture import (
    MAGIC,
    CaptureRecord,
    CaptureWriter,
    RecordKind,
    parse_capture,
    read_capture,
)
from dragonflybot.sim.lineformat import parse_lines, read_lines, seconds_to_ns

URL = "ws://127.0.0.1:9/stream?streams=ethbtc@depth@100ms"
RECORDS = [
    CaptureRecord(RecordKind.CONNECT, 1_000, URL, b""),
    CaptureRecord(RecordKind.WS_OUT, 2_000, URL, b'{"method":"SUBSCRIBE","params":["x"],"id":1}'),
    CaptureRecord(RecordKind.WS_IN, 3_000, URL, b'{"result":null,"id":1}'),
    CaptureRecord(RecordKind.WS_IN, 4_000, URL, '{"caf\u00e9":1}'.encode()),
    CaptureRecord(RecordKind.REST, 5_000, "http://127.0.0.1:9/api/v3/depth?symbol=X", b"{}"),
    CaptureRecord(RecordKind.WS_IN, 6_000, URL, b'{"stream":"x","data":{}}'),
]


def write(path: Path, records: list[CaptureRecord]) -> None:
    with CaptureWriter.open(path) as writer:
        writer.write_many(records)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.cap"
    write(path, RECORDS)
    capture = read_capture(path)
    assert list(capture.records) == RECORDS
    assert capture.torn_bytes == 0
    # URLs are stored once: the file is smaller than the URLs repeated per record.
    assert path.stat().st_size < sum(len(r.url) + len(r.payload) for r in RECORDS)


def test_every_truncation_reads_back_all_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "a.cap"
    write(path, RECORDS)
    data = path.read_bytes()
    full = parse_capture(data).records
    boundaries = []  # file length after each complete record
    for n in range(len(full) + 1):
        probe = tmp_path / f"p{n}.cap"
        write(probe, RECORDS[:n])
        boundaries.append(probe.stat().st_size)
    for cut in range(len(data) + 1):
        capture = parse_capture(data[:cut])
        complete = sum(1 for b in boundaries[1:] if b <= cut)
        assert list(capture.records) == RECORDS[:complete], cut
        assert capture.valid_length + capture.torn_bytes == cut or cut < len(MAGIC)


def test_a_torn_last_record_with_garbage_is_ignored_but_corruption_inside_is_an_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.cap"
    write(path, RECORDS)
    data = bytearray(path.read_bytes())
    torn = bytes(data[:-3]) + b"\xff\xff\xff"  # last record's tail overwritten
    assert list(parse_capture(torn).records) == RECORDS[:-1]
    assert list(parse_capture(bytes(data) + b"\x00" * 64).records) == RECORDS  # zero-filled tail
    data[len(MAGIC) + 20] ^= 0xFF  # inside the first records
    with pytest.raises(DecodeError, match="corrupt"):
        parse_capture(bytes(data))
    with pytest.raises(DecodeError, match="header"):
        parse_capture(b"not a capture at all")


def test_append_cuts_a_torn_tail_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "a.cap"
    write(path, RECORDS[:4])
    with open(path, "ab") as file:
        file.write(b"\x30\x00\x00\x00partial")  # a crash in the middle of a record
    write(path, RECORDS[4:])
    capture = read_capture(path)
    assert list(capture.records) == RECORDS
    assert capture.torn_bytes == 0


BITSTAMP = "wss://ws.bitstamp.net/"
CHANNEL = "diff_order_book_sgbeur"
LINES = "\n".join(
    [
        f"{BITSTAMP} <-> 1641343690.598303",
        f"{BITSTAMP} <- 1641343691.067583: "
        f'{{"event":"bts:subscribe","data":{{"channel":"{CHANNEL}"}}}}',
        "1641343697.40338: "
        f'{{"event":"bts:subscription_succeeded","channel":"{CHANNEL}","data":{{}}}}',
        '1641343697.4035149: {"data":{"timestamp":"1641343691","microtimestamp":"1641343691406478",'
        f'"bids":[],"asks":[]}},"channel":"{CHANNEL}","event":"data"}}',
    ]
)


def test_line_format_import() -> None:
    records = parse_lines(LINES)
    assert [r.kind for r in records] == [
        RecordKind.CONNECT,
        RecordKind.WS_OUT,
        RecordKind.WS_IN,
        RecordKind.WS_IN,
    ]
    assert records[0].time_ns == 1_641_343_690_598_303_000
    assert records[3].time_ns == 1_641_343_697_403_514_900
    assert records[3].payload == LINES.splitlines()[3].split(": ", 1)[1].encode()
    assert {r.url for r in records} == {"wss://ws.bitstamp.net/"}
    rest = parse_lines('https://x/api/v2/order_book/ethusd -> 1641343696.2: {"a": 1}\n')
    assert rest[0].kind is RecordKind.REST and rest[0].payload == b'{"a": 1}'
    assert seconds_to_ns("12") == 12 * 10**9
    with pytest.raises(DecodeError):
        parse_lines("garbage line without a stamp\n")


def test_recorded_files_import(samples_dir: Path) -> None:
    for name in ("BINANCE.ws.1.0", "BITSTAMP.ws.1.0", "BINANCE.http.0.0", "BITSTAMP.http.0.0"):
        lines = [ln for ln in (samples_dir / name).read_text().splitlines() if ln]
        records = read_lines(samples_dir / name)
        assert len(records) == len(lines)
        for line, record in zip(lines, records, strict=True):
            assert line.endswith(record.payload.decode())
