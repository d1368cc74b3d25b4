"""Sans-I/O abuse detection for one HTTP/2 connection: frame counting before h2 sees the bytes.

h2 parses frames and turns most of them into events, but it accepts any number
of them: a peer sending 60 k PINGs per second makes the server parse, answer and
queue 60 k PING ACKs per second, and h2 keeps up to 64 CONTINUATION frames of a
header block (1 MiB at the largest frame size) before deciding anything. Neither
is a protocol error, so h2 has no reason to stop it. ``FrameGuard`` walks the
9-byte frame headers of the incoming bytes (skipping payloads, so a DATA frame
costs one header read) and charges frames against token buckets:

* control frames (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, unknown types,
  empty CONTINUATION frames, and DATA frames under ``SMALL_DATA`` bytes that do
  not end their stream: requests here are one tiny message, and each such frame
  costs the server as much as a PING, an answer included if its stream is
  closed) share one bucket; every
  DATA frame the server sends refunds two tokens, so a client acknowledging a
  fast stream with WINDOW_UPDATEs (the stream's and the connection's, after
  every frame) never runs dry;
* RST_STREAM frames are control frames too (the connection gives the token back
  for the cancel of a call the server had answered); in addition, the connection charges
  a second, smaller bucket (``charge_reset``) for every stream that cost it work
  and gave nothing back: a stream the client reset before the server answered,
  a stream refused over the limit, a request rejected as malformed. A client
  opening and resetting streams in a loop is the rapid-reset attack
  (CVE-2023-44487), whose cost is the handler started for each stream; a client
  cancelling calls it has had answers on is not;
* the encoded header block (HEADERS plus CONTINUATIONs) must stay within a byte
  bound, whatever h2's own backlog would allow.

An empty bucket is a verdict (``Flood``); the connection answers it with GOAWAY
ENHANCE_YOUR_CALM and closes. The buckets refill continuously, so an honest
client's occasional burst (a keepalive PING, a SETTINGS change, cancelling a
few calls) never comes near.
"""

from __future__ import annotations

from typing import Final, Literal

PREFACE_LENGTH: Final = 24
"""The client's connection preface precedes its first frame (h2 checks its bytes)."""

DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9
SMALL_DATA: Final = 64
"""DATA frames shorter than this, not ending their stream, count as control frames."""

_END_STREAM: Final = 0x1
_END_HEADERS: Final = 0x4

FloodKind = Literal["control", "reset", "header_block"]


class Flood(Exception):
    """The peer went past a limit; ``kind`` says which (a metric label)."""

    def __init__(self, kind: FloodKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: FloodKind = kind


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float, count: float = 1.0) -> bool:
        """Spend ``count`` tokens if there are that many (refilled up to ``now``)."""
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True

    def refund(self, count: float) -> None:
        self._tokens = min(self.burst, self._tokens + count)


class FrameGuard:
    """Counts the frames in a server connection's incoming bytes; raises ``Flood``."""

    __slots__ = (
        "_block",
        "_control",
        "_header",
        "_max_block",
        "_preface",
        "_resets",
        "_skip",
        "frames",
    )

    def __init__(
        self,
        *,
        control_rate: float,
        control_burst: int,
        reset_rate: float,
        reset_burst: int,
        max_header_block: int,
    ) -> None:
        self._control = TokenBucket(control_rate, control_burst)
        self._resets = TokenBucket(reset_rate, reset_burst)
        self._max_block = max_header_block
        self._preface = PREFACE_LENGTH
        self._header = b""
        self._skip = 0
        self._block = -1
        """Bytes of the header block being received, -1 when none is open."""
        self.frames = 0
        """Frames seen so far (for tests and logs)."""

    def feed(self, data: bytes, now: float) -> None:
        """Account for ``data`` (the peer's next bytes, split anyhow); ``Flood`` past a limit."""
        view = memoryview(data)
        pos = 0
        end = len(view)
        if self._preface:
            taken = min(self._preface, end)
            self._preface -= taken
            pos = taken
        while pos < end:
            if self._skip:
                taken = min(self._skip, end - pos)
                self._skip -= taken
                pos += taken
                continue
            need = 9 - len(self._header)
            if end - pos < need:
                self._header += bytes(view[pos:end])
                return
            header = self._header + bytes(view[pos : pos + need])
            self._header = b""
            pos += need
            length = int.from_bytes(header[0:3], "big")
            self._frame(header[3], header[4], length, now)
            self._skip = length

    def charge_reset(self, now: float) -> None:
        """A stream reset before any answer, refused or rejected; ``Flood`` past the budget."""
        if not self._resets.take(now):
            raise Flood("reset", "too many streams reset early, refused or rejected")

    def credit(self, frames: int) -> None:
        """Give back ``frames`` control tokens: the server sent that many DATA frames (a
        WINDOW_UPDATE for each is fair), or the connection found frames it charged to be
        part of an honest stream's life (its request message, the cancel of an answered call).
        """
        self._control.refund(frames)

    def _frame(self, kind: int, flags: int, length: int, now: float) -> None:
        self.frames += 1
        if kind == DATA:
            if length < SMALL_DATA and not flags & _END_STREAM:
                self._charge(now)
            return
        if kind == HEADERS:
            self._block = 0 if not flags & _END_HEADERS else -1
            self._grow_block(length)
            return
        if kind == CONTINUATION:
            if length == 0 and not flags & _END_HEADERS:
                self._charge(now)
            self._grow_block(length)
            if flags & _END_HEADERS:
                self._block = -1
            return
        if kind == GOAWAY:
            return
        self._charge(now)

    def _grow_block(self, length: int) -> None:
        if self._block < 0:
            if length > self._max_block:
                raise Flood("header_block", f"a header block of {length} bytes")
            return
        self._block += length
        if self._block > self._max_block:
            raise Flood("header_block", f"a header block over {self._max_block} bytes")

    def _charge(self, now: float) -> None:
        if not self._control.take(now):
            raise Flood("control", "too many control frames")
