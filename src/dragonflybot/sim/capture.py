"""The capture file format: compact, append-only, readable after a crash mid-write.

Layout (all integers little-endian; described for users in ``docs/capture-format.md``)::

    file    = MAGIC record*
    MAGIC   = b"DFBCAP" 0x00 0x01                    (8 bytes: name, format version 1)
    record  = length:u32 crc:u32 body                (length = len(body), crc = CRC-32 of body)
    body    = kind:u8 stream:u16 time_ns:i64 payload

``kind`` says what the payload is (``RecordKind``); ``stream`` numbers the URL it belongs
to: a ``URL`` record (payload = the URL, UTF-8) defines the next number, starting at 1, and
every later record refers to it, so a URL is stored once rather than in every frame
(0 = no URL). A record is written with one ``write`` call; a reader that meets a record
running past the end of the file, or a last record whose CRC does not match, has found a
write torn by a crash and ignores it (as it does a zero-filled tail, which some file
systems leave after a crash). A CRC mismatch anywhere else is corruption and an
error. Appending to a file first cuts such a torn tail, so it never ends up mid-file.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from dragonflybot.errors import DecodeError

MAGIC: Final = b"DFBCAP\x00\x01"
_FRAME: Final = struct.Struct("<II")
_BODY: Final = struct.Struct("<BHq")
MAX_RECORD: Final = 64 * 1024 * 1024


class RecordKind(enum.IntEnum):
    URL = 0
    """Defines the next stream number; payload: the URL."""
    META = 1
    """Payload: JSON object describing the capture (venue, instrument, tool)."""
    CONNECT = 2
    """A WebSocket connection to the stream's URL was opened; empty payload."""
    WS_IN = 3
    """A frame received from the venue; payload: the frame text, exactly."""
    WS_OUT = 4
    """A frame sent to the venue (subscribe requests, heartbeats)."""
    REST = 5
    """A REST response body; the stream's URL is the full request URL."""
    DISCONNECT = 6
    """The connection ended; payload: the reason."""


@attrs.frozen(slots=True)
class CaptureRecord:
    kind: RecordKind
    time_ns: int
    """Unix time of receipt (or sending), in ns."""
    url: str
    payload: bytes


@attrs.frozen
class Capture:
    records: tuple[CaptureRecord, ...]
    torn_bytes: int
    """Bytes of a torn final record that were ignored (0 for a cleanly closed file)."""
    valid_length: int
    """Bytes of the file that hold whole records (where an append continues)."""


def parse_capture(data: bytes) -> Capture:
    """Decode a capture; ``DecodeError`` for a file that is not one or is corrupt."""
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            return Capture((), len(data), 0)  # crashed while writing the header
        raise DecodeError("not a dragonflybot capture (bad header)")
    if not data.startswith(MAGIC):
        raise DecodeError("not a dragonflybot capture (bad header)")
    urls: list[str] = [""]
    records: list[CaptureRecord] = []
    offset = len(MAGIC)
    end = len(data)
    while offset < end:
        if end - offset < _FRAME.size:
            return Capture(tuple(records), end - offset, offset)
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if length > end - start:
            return Capture(tuple(records), end - offset, offset)
        body = data[start : start + length]
        if zlib.crc32(body) != crc or length < _BODY.size:
            if start + length == end or not data[offset:].strip(b"\0"):
                # The last record, or a zero-filled tail (space allocated, never written).
                return Capture(tuple(records), end - offset, offset)
            raise DecodeError(f"capture is corrupt: bad record at byte {offset}")
        kind_code, stream, time_ns = _BODY.unpack_from(body)
        payload = body[_BODY.size :]
        try:
            kind = RecordKind(kind_code)
        except ValueError:
            raise DecodeError(
                f"capture record at byte {offset} has unknown kind {kind_code}"
            ) from None
        if kind is RecordKind.URL:
            urls.append(payload.decode("utf-8", "replace"))
        elif stream >= len(urls):
            raise DecodeError(
                f"capture record at byte {offset} refers to undefined stream {stream}"
            )
        else:
            records.append(CaptureRecord(kind, time_ns, urls[stream], payload))
        offset = start + length
    return Capture(tuple(records), 0, offset)


def read_capture(path: str | os.PathLike[str]) -> Capture:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read capture {os.fspath(path)!r}: {exc}") from exc
    return parse_capture(data)


def is_capture(path: str | os.PathLike[str]) -> bool:
    """True when the file starts like a dragonflybot capture (vs. the line format)."""
    with open(path, "rb") as file:
        head = file.read(len(MAGIC))
    return bool(head) and MAGIC.startswith(head)


class CaptureEncoder:
    """Turns records into bytes, remembering which URLs already have a stream number."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._streams: dict[str, int] = {}
        for url in known:
            self._streams.setdefault(url, len(self._streams) + 1)

    def encode(self, kind: RecordKind, time_ns: int, url: str, payload: bytes) -> bytes:
        out = b""
        stream = 0
        if url:
            stream = self._streams.get(url, 0)
            if not stream:
                stream = self._streams[url] = len(self._streams) + 1
                out = _record(RecordKind.URL, 0, 0, url.encode())
        if len(payload) > MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes is over the {MAX_RECORD} limit")
        return out + _record(kind, stream, time_ns, payload)


def _record(kind: RecordKind, stream: int, time_ns: int, payload: bytes) -> bytes:
    if stream > 0xFFFF:
        raise ValueError("a capture holds at most 65535 URLs")
    body = _BODY.pack(kind, stream, time_ns) + payload
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _urls_in(data: bytes, valid_length: int) -> Iterator[str]:
    offset = len(MAGIC)
    while offset < valid_length:
        length, _ = _FRAME.unpack_from(data, offset)
        body = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if body[0] == RecordKind.URL:
            yield body[_BODY.size :].decode("utf-8", "replace")
        offset += _FRAME.size + length


class CaptureWriter:
    """Appends records to a capture file, one ``write`` per record (unbuffered), so a
    crash can only tear the record being written."""

    def __init__(self, file: BinaryIO, encoder: CaptureEncoder) -> None:
        self._file = file
        self._encoder = encoder
        self.records = 0

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CaptureWriter:
        """Open ``path`` for appending (created if missing); a torn tail is cut first."""
        target = Path(path)
        known: list[str] = []
        if target.exists() and target.stat().st_size:
            data = target.read_bytes()
            capture = parse_capture(data)
            known = list(_urls_in(data, capture.valid_length))
            if capture.torn_bytes:
                with open(target, "r+b") as torn:
                    torn.truncate(capture.valid_length)
        file = open(target, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        if file.tell() == 0:
            file.write(MAGIC)
        return cls(file, CaptureEncoder(known))

    def write(self, kind: RecordKind, time_ns: int, url: str, payload: bytes) -> None:
        self._file.write(self._encoder.encode(kind, time_ns, url, payload))
        self.records += 1

    def write_many(self, records: Iterable[CaptureRecord]) -> None:
        for record in records:
            self.write(record.kind, record.time_ns, record.url, record.payload)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
