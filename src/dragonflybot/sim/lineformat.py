"""Import of the text recordings in ``../shared/data/recorded`` (cryptofeed's line format).

``.ws.`` files: first line ``URL <-> connect_time``; a frame sent to the venue
``URL <- recv_time: frame``; a frame received ``recv_time: frame``. ``.http.`` files:
``URL -> recv_time: body``. Times are Unix seconds with a fraction; each line is split at
the first ``": "`` after its timestamp and the rest of the line is the exact frame text.
The records come out as ``capture.CaptureRecord``s, so a real recording is served by the
same replay code as a dragonflybot capture.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from dragonflybot.errors import DecodeError
from dragonflybot.sim.capture import CaptureRecord, RecordKind

_TIME: Final = re.compile(r"\d{1,12}(?:\.\d{1,9})?")


def seconds_to_ns(text: str) -> int:
    """``"1633998512.0633569"`` -> ns, exactly (no float rounding)."""
    if not _TIME.fullmatch(text):
        raise DecodeError(f"not a timestamp: {text[:40]!r}")
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0") or "0")


def _split(line: str, number: int) -> tuple[str, str]:
    stamp, sep, rest = line.partition(": ")
    if not sep:
        raise DecodeError(f"line {number}: no ': ' after the timestamp")
    return stamp, rest


def parse_lines(text: str, *, name: str = "<recording>") -> list[CaptureRecord]:
    """Records of one line-format file (``.ws.`` or ``.http.``)."""
    records: list[CaptureRecord] = []
    url = ""
    try:
        for number, line in enumerate(text.splitlines(), 1):
            if not line:
                continue
            if " <-> " in line and number == 1:
                url, _, stamp = line.partition(" <-> ")
                records.append(CaptureRecord(RecordKind.CONNECT, seconds_to_ns(stamp), url, b""))
            elif " <- " in line.partition(": ")[0]:
                target, _, rest = line.partition(" <- ")
                stamp, frame = _split(rest, number)
                records.append(
                    CaptureRecord(RecordKind.WS_OUT, seconds_to_ns(stamp), target, frame.encode())
                )
            elif " -> " in line.partition(": ")[0]:
                target, _, rest = line.partition(" -> ")
                stamp, body = _split(rest, number)
                records.append(
                    CaptureRecord(RecordKind.REST, seconds_to_ns(stamp), target, body.encode())
                )
            else:
                stamp, frame = _split(line, number)
                if not url:
                    raise DecodeError(f"line {number}: a received frame before the URL line")
                records.append(
                    CaptureRecord(RecordKind.WS_IN, seconds_to_ns(stamp), url, frame.encode())
                )
    except DecodeError as exc:
        raise DecodeError(f"{name}: {exc}") from exc
    return records


def read_lines(path: str | os.PathLike[str]) -> list[CaptureRecord]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot read recording {os.fspath(path)!r}: {exc}") from exc
    return parse_lines(text, name=os.fspath(path))
