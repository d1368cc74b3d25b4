"""FrameSplitter without sockets: every byte is either decoded once or given to wsproto once."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from dragonflybot.client.frames import FrameSplitter, Stop

from .wire import (
    BINARY,
    CONTINUATION,
    PING,
    TEXT,
    Piece,
    Seen,
    close_frame,
    cut,
    frame,
    join,
    open_client,
    reference,
    server_items,
)

LIMIT = 1 << 20


class Driver:
    """The client's use of the splitter, minus the sockets: raw frames and hand-overs go to a
    real wsproto connection, messages from both land in one list in arrival order."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.ws: WSConnection = open_client()
        self.splitter: FrameSplitter | None = FrameSplitter(limit)
        self.ready: deque[str | bytes] = deque()
        self.seen = Seen()
        self.parts: list[str | bytes] = []
        self.fast = 0
        self.raw: list[bytes] = []
        self.stops: list[Stop] = []

    def take(self, chunk: bytes | None) -> None:
        splitter = self.splitter
        if splitter is None or chunk is None or self.ws.state is not ConnectionState.OPEN:
            self.hand_over()
            if self.ws.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                self.wsproto(chunk)
            return
        splitter.feed(chunk)
        while True:
            before = len(self.ready)
            verdict = splitter.split(self.ready)
            self.fast += len(self.ready) - before
            self.seen.messages.extend(self.ready)
            self.ready.clear()
            if verdict is Stop.NEED_DATA:
                return
            if isinstance(verdict, bytes):
                self.raw.append(verdict)
                self.wsproto(verdict)
                if self.seen.close is None:
                    continue
            else:
                self.stops.append(verdict)
            self.hand_over()
            return

    def hand_over(self) -> None:
        if self.splitter is not None:
            rest = self.splitter.detach()
            self.splitter = None
            if rest and self.ws.state is ConnectionState.OPEN:
                self.wsproto(rest)

    def wsproto(self, data: bytes | None) -> None:
        if self.seen.close is not None:
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                self.parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
                if event.message_finished:
                    self.seen.messages.append(join(self.parts))
                    self.parts.clear()
            elif isinstance(event, Ping) and self.ws.state is ConnectionState.OPEN:
                self.seen.pings.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self.seen.close = (int(event.code), event.reason or "")
                return


def drive(chunks: list[bytes], *, eof: bool, limit: int = LIMIT) -> Driver:
    driver = Driver(limit)
    for chunk in chunks:
        driver.take(chunk)
    if eof:
        driver.take(None)
    return driver


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(server_items(), max_size=12),
    closing=st.sampled_from(["eof", "close", "close-then-more"]),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=12),
)
def test_split_frames_read_like_wsproto_alone(
    items: list[Piece], closing: str, cuts: list[int]
) -> None:
    wire = b"".join(item.wire for item in items)
    if closing != "eof":
        wire += close_frame(1001, "going away ✓")
    if closing == "close-then-more":
        wire += frame(TEXT, "after the close") + frame(PING, b"late")
    chunks = cut(wire, cuts)
    driver = drive(chunks, eof=closing == "eof")
    expected = reference(chunks, eof=closing == "eof")
    assert driver.seen == expected
    # Every simple frame took the fast path, every other frame went to wsproto whole.
    assert driver.fast == sum(item.simple for item in items)
    assert driver.stops == []
    assert b"".join(driver.raw) == b"".join(item.wire for item in items if not item.simple) + (
        b"" if closing == "eof" else close_frame(1001, "going away ✓")
    )


def test_partial_frame_waits_and_large_frame_is_assembled_from_many_reads() -> None:
    payload = bytes(range(256)) * 400  # 102400 bytes: 64-bit length
    wire = frame(TEXT, "first") + frame(BINARY, payload) + frame(TEXT, "last")
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    verdicts = []
    for start in range(0, len(wire), 1000):
        splitter.feed(wire[start : start + 1000])
        verdicts.append(splitter.split(ready))
    assert list(ready) == ["first", payload, "last"]
    assert set(verdicts) == {Stop.NEED_DATA}
    assert splitter.detach() == b""


def test_detach_returns_exactly_the_unsplit_bytes() -> None:
    ping = frame(PING, b"p")
    partial = frame(TEXT, "x" * 300)[:150]
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    splitter.feed(frame(TEXT, "a") + ping + frame(TEXT, "b") + partial[:100])
    assert splitter.split(ready) == ping
    assert list(ready) == ["a"]
    splitter.feed(b"")
    assert splitter.split(ready) is Stop.NEED_DATA
    splitter.feed(partial[100:])
    assert splitter.split(ready) is Stop.NEED_DATA
    assert list(ready) == ["a", "b"]
    assert splitter.detach() == partial


def test_fragmented_message_goes_to_wsproto_until_its_last_frame() -> None:
    first = frame(TEXT, "fr", fin=False)
    middle = frame(CONTINUATION, "ag", fin=False)
    last = frame(CONTINUATION, "ment")
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    splitter.feed(frame(TEXT, "before") + first + frame(PING, b"") + middle + last)
    splitter.feed(b"")
    got = [splitter.split(ready) for _ in range(4)]
    assert got == [first, frame(PING, b""), middle, last]
    assert not splitter.in_fragmented_message
    splitter.feed(frame(BINARY, b"after"))
    assert splitter.split(ready) is Stop.NEED_DATA
    assert list(ready) == ["before", b"after"]


def test_invalid_utf8_text_goes_to_wsproto_whole() -> None:
    bad = frame(TEXT, b"ok\xff")
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    splitter.feed(bad + frame(TEXT, "next"))
    assert splitter.split(ready) == bad
    assert not ready


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame(TEXT, "masked", mask=b"abcd"), id="masked"),
        pytest.param(frame(TEXT, "rsv1", rsv=4), id="rsv1"),
        pytest.param(frame(BINARY, b"rsv3", rsv=1), id="rsv3"),
        pytest.param(frame(0x3, b"opcode 3"), id="reserved-opcode"),
        pytest.param(frame(0xB, b"opcode B"), id="reserved-control-opcode"),
        pytest.param(frame(PING, b"split ping", fin=False), id="fragmented-control"),
        pytest.param(frame(PING, b"p" * 126), id="long-control"),
        pytest.param(frame(TEXT, "padded", length_size=2), id="padded-16-bit-length"),
        pytest.param(frame(TEXT, "padded", length_size=8), id="padded-64-bit-length"),
        pytest.param(frame(CONTINUATION, b"orphan"), id="orphan-continuation"),
        pytest.param(b"\x81\xff\x80" + bytes(7), id="64-bit-length-msb"),
    ],
)
def test_headers_only_wsproto_may_judge_hand_over_with_the_frame(bad: bytes) -> None:
    good = frame(TEXT, "good")
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    # Only the header and a little of the rest: a hand-over never waits for the payload.
    splitter.feed(good + bad[:12])
    assert splitter.split(ready) is Stop.HAND_OVER
    assert list(ready) == ["good"]
    assert splitter.detach() == bad[:12]
    # wsproto indeed refuses each of them.
    assert drive([good + bad], eof=False).seen.close is not None
    assert reference([good + bad], eof=False).close is not None


def test_new_message_during_a_fragmented_one_hands_over() -> None:
    splitter = FrameSplitter(LIMIT)
    ready: deque[str | bytes] = deque()
    first = frame(TEXT, "a", fin=False)
    splitter.feed(first + frame(TEXT, "b"))
    assert splitter.split(ready) == first
    assert splitter.split(ready) is Stop.HAND_OVER
    assert splitter.detach() == frame(TEXT, "b")


def header(opcode: int, length: int) -> bytes:
    """The header of a final frame declaring ``length`` (shortest encoding), without payload."""
    if length < 0x10000:
        return bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
    return bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")


@pytest.mark.parametrize(
    ("start", "limit", "declared"),
    [
        pytest.param(b"", 1000, 1001, id="binary"),
        pytest.param(b"", 1000, 1 << 40, id="binary-huge"),
        pytest.param(frame(BINARY, b"x", fin=False), 1000, 1001, id="binary-continuation"),
    ],
)
def test_binary_declared_longer_than_the_limit_stops_at_its_header(
    start: bytes, limit: int, declared: int
) -> None:
    opcode = CONTINUATION if start else BINARY
    splitter = FrameSplitter(limit)
    ready: deque[str | bytes] = deque()
    head = header(opcode, declared)
    splitter.feed(start + head + b"\x00" * 10)
    if start:
        assert splitter.split(ready) == start
    assert splitter.split(ready) is Stop.TOO_BIG
    assert splitter.detach() == head + b"\x00" * 10
    fitting = FrameSplitter(limit)
    fitting.feed(frame(BINARY, b"\x00" * limit))
    assert fitting.split(ready) is Stop.NEED_DATA
    assert ready[-1] == b"\x00" * limit


def test_text_limit_counts_characters_like_len() -> None:
    limit = 10
    splitter = FrameSplitter(limit)
    ready: deque[str | bytes] = deque()
    wide = "€" * limit  # 30 bytes, 10 characters: within the limit
    too_long = frame(TEXT, "x" * (limit + 1))  # 11 characters: wsproto's path closes it
    splitter.feed(frame(TEXT, wide) + too_long)
    assert splitter.split(ready) == too_long
    assert list(ready) == [wide]
    # More than 4 bytes per allowed character cannot be within the limit: stop at the header.
    splitter = FrameSplitter(limit)
    head = frame(TEXT, "x" * (4 * limit + 1))[:2]
    splitter.feed(head)
    assert splitter.split(ready) is Stop.TOO_BIG
    splitter = FrameSplitter(limit)
    splitter.feed(frame(TEXT, "x", fin=False) + frame(CONTINUATION, "x" * (4 * limit + 1))[:2])
    assert isinstance(splitter.split(ready), bytes)
    assert splitter.split(ready) is Stop.TOO_BIG
