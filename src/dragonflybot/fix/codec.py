"""FIX tag=value framing, parsing and encoding: the one module that touches simplefix.

simplefix parses ``tag=value`` fields and encodes messages (BodyLength and
CheckSum computed for us), but it finds a message's end by scanning for the
``10=`` field and checks neither BodyLength nor CheckSum. FIX requires both to be
checked and a message that fails either to be dropped ("garbled", no reply),
so framing is done here first: ``FrameSplitter`` cuts the byte stream by
BodyLength, verifies the trailer and the checksum, and only whole, verified
frames reach simplefix. Garbage between frames and garbled frames are skipped
up to the next ``8=FIX`` and counted; nothing here raises on bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import attrs
import simplefix  # type: ignore[import-untyped]
import simplefix.errors  # type: ignore[import-untyped]

BEGIN_STRING: Final = "FIX.4.4"
SOH: Final = b"\x01"
MAX_MESSAGE_BYTES: Final = 64 * 1024
"""A frame claiming a longer body is garbled: nothing this acceptor accepts comes close."""

_START: Final = b"8=FIX"
_TRAILER_LEN: Final = 7  # b"10=NNN\x01"

Field = tuple[int, str]


@attrs.frozen(slots=True)
class Message:
    """One parsed message: every field in wire order (groups depend on order).

    Values are decoded as Latin-1, which maps each byte to one character and so
    never fails: whether a value is valid is the session's or the application's
    question, answered with a Reject, never an exception here.
    """

    fields: tuple[Field, ...]

    def get(self, tag: int) -> str | None:
        """The first value of ``tag``, or ``None``."""
        for t, value in self.fields:
            if t == tag:
                return value
        return None

    def count(self, tag: int) -> int:
        return sum(1 for t, _ in self.fields if t == tag)

    @property
    def msg_type(self) -> str | None:
        return self.get(35)

    def body(self) -> tuple[Field, ...]:
        """The fields after the standard header and before the trailer."""
        return tuple(f for f in self.fields if f[0] not in HEADER_TAGS and f[0] != 10)


HEADER_TAGS: Final = frozenset({8, 9, 35, 34, 49, 56, 52, 43, 97, 122, 115, 128, 50, 57})


class FrameSplitter:
    """Bytes in, verified frames out. ``garbled`` counts what was dropped (FIX: silently)."""

    __slots__ = ("_buf", "garbled")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbled = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def frames(self) -> list[bytes]:
        """Every complete frame now buffered, in order (garbled ones dropped and counted)."""
        out: list[bytes] = []
        while True:
            frame = self._next()
            if frame is None:
                return out
            out.append(frame)

    def _drop_to_next_start(self, after: int) -> None:
        buf = self._buf
        nxt = buf.find(_START, after)
        if nxt < 0:
            nxt = max(after, len(buf) - _partial_start(buf))
        del buf[:nxt]

    def _next(self) -> bytes | None:
        buf = self._buf
        while True:
            start = buf.find(_START)
            if start < 0:
                keep = _partial_start(buf)
                if len(buf) > keep:
                    self.garbled += 1
                    del buf[: len(buf) - keep]
                return None
            if start > 0:
                self.garbled += 1
                del buf[:start]
            begin_end = buf.find(SOH)
            if begin_end < 0:
                if len(buf) > 32:
                    self._garbled_frame()
                    continue
                return None
            if begin_end > 32 or not buf.startswith(b"9=", begin_end + 1):
                if len(buf) < begin_end + 3:
                    return None
                self._garbled_frame()
                continue
            length_end = buf.find(SOH, begin_end + 3, begin_end + 3 + 8)
            if length_end < 0:
                if len(buf) < begin_end + 3 + 8:
                    digits = bytes(buf[begin_end + 3 :])
                    if digits.isdigit() or not digits:
                        return None
                self._garbled_frame()
                continue
            digits = bytes(buf[begin_end + 3 : length_end])
            if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_MESSAGE_BYTES:
                self._garbled_frame()
                continue
            body_end = length_end + 1 + int(digits)
            end = body_end + _TRAILER_LEN
            if len(buf) < end:
                return None
            trailer = bytes(buf[body_end:end])
            if (
                not (trailer.startswith(b"10=") and trailer[3:6].isdigit() and trailer[6:7] == SOH)
                or int(trailer[3:6]) != sum(buf[:body_end]) % 256
            ):
                self._garbled_frame()
                continue
            frame = bytes(buf[:end])
            del buf[:end]
            return frame

    def _garbled_frame(self) -> None:
        self.garbled += 1
        self._drop_to_next_start(1)


def _partial_start(buf: bytearray) -> int:
    """Length of the longest tail of ``buf`` that could begin a start marker."""
    for keep in range(min(len(buf), len(_START) - 1), 0, -1):
        if buf.endswith(_START[:keep]):
            return keep
    return 0


def parse_frame(frame: bytes) -> Message | None:
    """The fields of a verified frame; ``None`` if its fields are malformed (garbled)."""
    parser = simplefix.FixParser()
    parser.append_buffer(frame)
    try:
        parsed = parser.get_message()
    except (simplefix.errors.ParsingError, ValueError):
        return None
    if parsed is None or parser.get_buffer():
        return None
    return Message(tuple((int(tag), value.decode("latin-1")) for tag, value in parsed.pairs))


def encode(header: Sequence[Field], body: Iterable[Field]) -> bytes:
    """One message: ``header`` must start with MsgType (35); BeginString, BodyLength and
    CheckSum are added by simplefix."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, BEGIN_STRING, header=True)
    for tag, value in header:
        msg.append_pair(tag, value, header=True)
    for tag, value in body:
        msg.append_pair(tag, value)
    data: bytes = msg.encode()
    return data
