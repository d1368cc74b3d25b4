"""Whole WebSocket frames split off the received bytes, so plain data frames can skip wsproto.

wsproto's ``receive_data()`` + ``events()`` builds a Frame and an Event object per frame and
runs an incremental UTF-8 decoder per message: over ten times the cost of reading the RFC 6455
§5.2 header and calling ``bytes.decode()`` (docs/performance.md, "Design measurements"). The
feeds' per-frame budget cannot afford that on every data frame, so the client splits the
frames itself and decodes the common case: a final,
unmasked, unfragmented text or binary frame without reserved bits. Everything else (control
frames, fragments, malformed frames) is returned as the raw bytes of exactly one whole frame for
wsproto, which keeps all protocol judgement. wsproto is therefore only ever given whole frames,
its buffer is empty afterwards, and splitting can go on behind it.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CONTINUATION: Final = 0x0
_CONTROL_OPCODES: Final = frozenset((0x8, 0x9, 0xA))
_MAX_CONTROL_PAYLOAD: Final = 125
# A UTF-8 code point takes at most 4 bytes: a text payload longer than 4 * max_message_size
# bytes decodes to more than max_message_size characters (the limit counts len(), not bytes).
_UTF8_MAX_BYTES_PER_CHAR: Final = 4


class Stop(enum.Enum):
    """Why ``FrameSplitter.split`` returned without a raw frame."""

    #: Every complete frame is consumed; the rest (if any) waits for the next read.
    NEED_DATA = enum.auto()
    #: The next frame has a header wsproto must judge (reserved bits, a mask, an unknown opcode,
    #: a fragmented or oversized control frame, a non-minimal length, a continuation out of
    #: place). Waiting for its payload could mean buffering without bound, so the splitter gives
    #: up: ``detach()`` and feed wsproto everything from here on.
    HAND_OVER = enum.auto()
    #: The next data frame declares a payload that cannot fit ``max_message_size``: close with
    #: 1009 before buffering any of it, then ``detach()`` and hand the rest to wsproto.
    TOO_BIG = enum.auto()


class FrameSplitter:
    """Splits the server's bytes of one client connection into frames (sans-I/O).

    ``feed`` each read, then call ``split`` until it returns a ``Stop``. ``split`` appends the
    decoded message of every simple data frame to the given deque and returns the raw bytes of
    the first other complete frame, for wsproto. Bytes of an incomplete frame are kept in a
    bytearray between reads and not looked at again until the whole frame is there, so a large
    frame arriving in many reads costs linear, not quadratic, copying.
    """

    __slots__ = ("_buf", "_fragmented", "_limit", "_need", "_pos", "_tail", "_text_limit")

    def __init__(self, max_message_size: int) -> None:
        self._limit = max_message_size
        self._text_limit = _UTF8_MAX_BYTES_PER_CHAR * max_message_size
        # Bytes being split and the position of the next frame in them.
        self._buf = b""
        self._pos = 0
        # The start of an incomplete frame, grown read by read until it holds ``_need`` bytes.
        self._tail = bytearray()
        self._need = 0
        # Opcode of the fragmented message in progress (0 when none): while one is, every frame
        # goes to wsproto, which assembles it and checks its UTF-8 across frames.
        self._fragmented = 0

    @property
    def in_fragmented_message(self) -> bool:
        return self._fragmented != 0

    def feed(self, data: bytes) -> None:
        """Add the bytes of one read."""
        tail = self._tail
        if tail:
            tail += data
            if len(tail) >= self._need:
                self._buf = bytes(tail)
                self._pos = 0
                tail.clear()
        elif self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        else:
            self._buf = data
            self._pos = 0

    def detach(self) -> bytes:
        """Everything fed and not yet split off, from a frame boundary on; the splitter is empty
        afterwards."""
        rest = self._buf[self._pos :] + self._tail
        self._buf = b""
        self._pos = 0
        self._tail.clear()
        self._need = 0
        return rest

    def split(self, messages: deque[str | bytes]) -> bytes | Stop:
        """Append simple messages to ``messages`` up to the first frame that is not simple.

        Returns that frame's raw bytes (control frame, fragment, invalid UTF-8 text, a text
        frame decoding to more than ``max_message_size`` characters), or a ``Stop``.
        """
        buf = self._buf
        pos = self._pos
        end = len(buf)
        append = messages.append
        limit = self._limit
        while True:
            available = end - pos
            if available < 2:
                return self._keep(pos, pos + 2)
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if available < 4:
                    return self._keep(pos, pos + 4)
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
                if length < 126:
                    return self._stop(pos, Stop.HAND_OVER)
            else:
                if available < 10:
                    return self._keep(pos, pos + 10)
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
                if length < 0x10000 or length >> 63:
                    return self._stop(pos, Stop.HAND_OVER)
            stop = start + length
            opcode = b0 & 0x0F
            if b0 & 0xF0 == 0x80 and not b1 & 0x80 and not self._fragmented:
                # Final, no reserved bits, unmasked, no fragmented message in progress.
                if opcode == _TEXT:
                    if length > self._text_limit:
                        return self._stop(pos, Stop.TOO_BIG)
                    if stop > end:
                        return self._keep(pos, stop)
                    try:
                        text = buf[start:stop].decode()
                    except UnicodeDecodeError:
                        return self._raw(pos, stop)
                    if length > limit and len(text) > limit:
                        return self._raw(pos, stop)
                    append(text)
                    pos = stop
                    continue
                if opcode == _BINARY:
                    if length > limit:
                        return self._stop(pos, Stop.TOO_BIG)
                    if stop > end:
                        return self._keep(pos, stop)
                    append(buf[start:stop])
                    pos = stop
                    continue
            return self._other(b0, b1, opcode, length, pos, stop)

    def _other(
        self, b0: int, b1: int, opcode: int, length: int, pos: int, stop: int
    ) -> bytes | Stop:
        """A frame that is not simple: a whole raw frame for wsproto, or a reason to stop."""
        fin = bool(b0 & 0x80)
        if b0 & 0x70 or b1 & 0x80:
            return self._stop(pos, Stop.HAND_OVER)
        if opcode in _CONTROL_OPCODES:
            if not fin or length > _MAX_CONTROL_PAYLOAD:
                return self._stop(pos, Stop.HAND_OVER)
        elif opcode == _CONTINUATION:
            if not self._fragmented:
                return self._stop(pos, Stop.HAND_OVER)
            text_limit = self._fragmented == _TEXT
            if length > (self._text_limit if text_limit else self._limit):
                return self._stop(pos, Stop.TOO_BIG)
        elif opcode in (_TEXT, _BINARY):
            if self._fragmented:
                return self._stop(pos, Stop.HAND_OVER)
            if length > (self._text_limit if opcode == _TEXT else self._limit):
                return self._stop(pos, Stop.TOO_BIG)
        else:
            return self._stop(pos, Stop.HAND_OVER)
        if stop > len(self._buf):
            return self._keep(pos, stop)
        if opcode == _CONTINUATION:
            if fin:
                self._fragmented = 0
        elif opcode in (_TEXT, _BINARY) and not fin:
            self._fragmented = opcode
        return self._raw(pos, stop)

    def _raw(self, pos: int, stop: int) -> bytes:
        self._pos = stop
        return self._buf[pos:stop]

    def _stop(self, pos: int, reason: Stop) -> Stop:
        self._pos = pos
        return reason

    def _keep(self, pos: int, need: int) -> Stop:
        """Keep the incomplete frame at ``pos``; split again once the buffer reaches ``need``."""
        buf = self._buf
        if pos < len(buf):
            self._tail += memoryview(buf)[pos:]
            self._need = need - pos
        self._buf = b""
        self._pos = 0
        return Stop.NEED_DATA
