"""The lean client's fast receive path against plain wsproto, over in-memory streams.

The server's bytes (the 101 response included) are cut wherever Hypothesis likes and written
one piece per client read; what the client delivers, answers and reports must be what wsproto
alone makes of the same bytes.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.events import AcceptConnection, CloseConnection, Event, Pong, Request

from dragonflybot.client.wsproto_backend import WsprotoStream
from dragonflybot.client.wsurl import parse_ws_url
from dragonflybot.errors import TransportError

from .wire import (
    BINARY,
    CONTINUATION,
    PING,
    TEXT,
    Piece,
    close_frame,
    cut,
    frame,
    reference,
    server_items,
)
from .ws_peer import RawPeer

URL = "ws://venue.test/ws/ethbtc@depth"
LIMIT = 1 << 20


class Outcome:
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.ending = ""
        self.pongs: list[bytes] = []
        self.closes: list[int] = []


async def converse(
    frames: bytes, cuts: list[int], *, eof: bool, limit: int = LIMIT, stall: bool = False
) -> Outcome:
    """Accept the client, send the 101 and ``frames`` cut at ``cuts``, end with EOF if ``eof``
    (or never send more if ``stall``); receive until the end, close, and see what the peer got.
    """
    client_end, server_end = trio.testing.memory_stream_pair()
    peer = RawPeer(server_end)
    stream = WsprotoStream(client_end, URL, max_message_size=limit, disconnect_timeout=1.0)
    outcome = Outcome()

    async def serve() -> None:
        request = await peer.next_event()
        assert isinstance(request, Request)
        for piece in cut(peer.ws.send(AcceptConnection()) + frames, cuts):
            await server_end.send_all(piece)
            # The client reads it alone before the next piece is written.
            await trio.testing.wait_all_tasks_blocked()
        if eof:
            await server_end.send_eof()
        elif stall:
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await stream.handshake(parse_ws_url(URL))
        with trio.fail_after(30):
            while True:
                try:
                    outcome.messages.append(await stream.receive())
                except TransportError as exc:
                    outcome.ending = str(exc)
                    break
        nursery.cancel_scope.cancel()
    await stream.aclose()
    events: list[Event] = []
    while (event := await peer.next_event()) is not None:
        events.append(event)
    outcome.pongs = [bytes(e.payload) for e in events if isinstance(e, Pong)]
    outcome.closes = [e.code for e in events if isinstance(e, CloseConnection)]
    return outcome


def run(
    frames: bytes, cuts: list[int], *, eof: bool, limit: int = LIMIT, stall: bool = False
) -> Outcome:
    async def main() -> Outcome:
        return await converse(frames, cuts, eof=eof, limit=limit, stall=stall)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=120, deadline=None)
@given(
    items=st.lists(server_items(), max_size=10),
    closing=st.sampled_from(["eof", "close", "close-then-more"]),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=10),
    near_the_head=st.lists(st.integers(0, 300), max_size=3),
)
def test_client_reads_like_wsproto_alone(
    items: list[Piece], closing: str, cuts: list[int], near_the_head: list[int]
) -> None:
    frames = b"".join(item.wire for item in items)
    if closing != "eof":
        frames += close_frame(1001, "maintenance ✓")
    if closing == "close-then-more":
        frames += frame(TEXT, "after the close") + frame(PING, b"late")
    # Cuts near the start fall in or just behind the 101 response.
    outcome = run(frames, cuts + near_the_head, eof=closing == "eof")
    expected = reference([frames], eof=closing == "eof")
    assert outcome.messages == expected.messages
    assert outcome.pongs == expected.pings
    assert expected.close is not None
    code, reason = expected.close
    assert f"code {code}" in outcome.ending
    assert reason in outcome.ending
    # A peer's close is answered with its own code; after EOF nothing more is sent.
    assert outcome.closes == ([] if closing == "eof" else [code])


def test_frames_with_the_101_survive_every_cut() -> None:
    frames = (
        frame(TEXT, "one")
        + frame(PING, b"hi")
        + frame(TEXT, "fr", fin=False)
        + frame(CONTINUATION, "ag")
        + frame(BINARY, b"\x00" * 200)
    )
    expected = ["one", "frag", b"\x00" * 200]
    # From inside the status line to the last byte: every split of one 101+frames write.
    for position in range(1, 400):
        outcome = run(frames, [position], eof=True)
        assert outcome.messages == expected, position
        assert outcome.pongs == [b"hi"], position


ping = frame(PING, b"before the error")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame(TEXT, b"caf\xc3"), id="invalid-utf8"),
        pytest.param(frame(TEXT, b"\xed\xa0\x80"), id="utf8-surrogate"),
        pytest.param(
            frame(TEXT, b"ok\xc3", fin=False) + frame(CONTINUATION, b"(", fin=True),
            id="invalid-utf8-across-fragments",
        ),
        pytest.param(frame(TEXT, "masked", mask=b"\x01\x02\x03\x04"), id="masked"),
        pytest.param(frame(TEXT, "rsv1", rsv=4), id="rsv1"),
        pytest.param(frame(BINARY, b"rsv2", rsv=2), id="rsv2"),
        pytest.param(frame(0x3, b"?"), id="reserved-opcode"),
        pytest.param(frame(PING, b"x", fin=False), id="fragmented-ping"),
        pytest.param(frame(TEXT, "padded", length_size=8), id="padded-length"),
        pytest.param(frame(CONTINUATION, b"orphan"), id="orphan-continuation"),
        pytest.param(frame(TEXT, "a", fin=False) + frame(TEXT, "b"), id="message-in-message"),
        pytest.param(frame(0x8, b"\x03"), id="one-byte-close"),
    ],
)
@pytest.mark.parametrize("reads", ["whole", "byte-by-byte"])
def test_protocol_errors_end_the_stream_as_wsproto_reports_them(bad: bytes, reads: str) -> None:
    frames = frame(TEXT, "fine") + ping + bad + frame(TEXT, "never delivered")
    cuts = list(range(len(frames) + 200)) if reads == "byte-by-byte" else []
    outcome = run(frames, cuts, eof=False, stall=True)
    expected = reference([frames], eof=False)
    assert expected.close is not None
    code, reason = expected.close
    assert code in (1002, 1007)
    assert outcome.messages == expected.messages == ["fine"]
    # (wsproto names the byte's position within what it had decoded: that part may differ.)
    assert f"connection closed by peer (code {code}: " in outcome.ending
    assert reason.split(" in position")[0] in outcome.ending
    assert outcome.pongs == [b"before the error"]
    # wsproto does not answer a broken peer; leaving the block says goodbye as usual.
    assert outcome.closes == [1000]


def declared(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A frame header declaring ``length`` bytes (shortest encoding) and no payload yet."""
    first = bytes([(0x80 if fin else 0) | opcode])
    if length < 0x10000:
        return first + bytes([126]) + length.to_bytes(2, "big")
    return first + bytes([127]) + length.to_bytes(8, "big")


@pytest.mark.parametrize(
    ("head", "limit"),
    [
        pytest.param(declared(BINARY, 1 << 40), 1000, id="binary-1TiB"),
        pytest.param(declared(BINARY, 1001), 1000, id="binary-just-over"),
        pytest.param(declared(TEXT, 4001), 1000, id="text-over-4-bytes-per-char"),
        pytest.param(
            frame(BINARY, b"start", fin=False) + declared(CONTINUATION, 1 << 33),
            1000,
            id="continuation",
        ),
    ],
)
def test_declared_oversize_closes_1009_without_waiting_for_the_payload(
    head: bytes, limit: int
) -> None:
    # The payload never comes: only a client that judges the header can end the stream.
    frames = frame(TEXT, "fits") + ping + head + b"\x00" * 20
    outcome = run(frames, [], eof=False, limit=limit, stall=True)
    assert outcome.messages == ["fits"]
    assert f"message larger than {limit} bytes" in outcome.ending
    assert outcome.pongs == [b"before the error"]
    assert outcome.closes == [1009]


def test_text_limit_counts_characters() -> None:
    limit = 100
    wide = "€" * limit  # 300 bytes, 100 characters
    frames = frame(TEXT, wide) + frame(TEXT, "x" * (limit + 1)) + frame(TEXT, "never")
    outcome = run(frames, [], eof=False, limit=limit, stall=True)
    assert outcome.messages == [wide]
    assert f"message larger than {limit} bytes" in outcome.ending
    assert outcome.closes == [1009]
