"""Framing by BodyLength and CheckSum: verified frames out, garbage dropped and counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.fix.codec import FrameSplitter, encode, parse_frame

LOGON = encode([(35, "A"), (49, "C"), (56, "S"), (34, "1")], [(98, "0"), (108, "30")])


def test_frames_survive_any_split_and_leading_garbage() -> None:
    data = b"noise" + LOGON + LOGON
    for cut in range(len(data)):
        splitter = FrameSplitter()
        splitter.feed(data[:cut])
        got = splitter.frames()
        splitter.feed(data[cut:])
        got += splitter.frames()
        assert got == [LOGON, LOGON]
        assert 1 <= splitter.garbled <= 2  # the noise, in one or two dropped pieces


def test_parse_frame_keeps_field_order_and_values() -> None:
    msg = parse_frame(LOGON)
    assert msg is not None
    assert msg.msg_type == "A" and msg.get(108) == "30" and msg.count(35) == 1
    assert msg.body() == ((98, "0"), (108, "30"))
    assert parse_frame(b"8=FIX.4.4\x019=5\x01x5=A\x0110=000\x01") is None


def test_bad_checksum_drops_only_that_frame() -> None:
    bad = LOGON[:-4] + b"%03d\x01" % ((int(LOGON[-4:-1]) + 1) % 256)
    splitter = FrameSplitter()
    splitter.feed(bad + LOGON)
    assert splitter.frames() == [LOGON]
    assert splitter.garbled == 1


def test_an_absurd_body_length_is_garbled_at_once() -> None:
    splitter = FrameSplitter()
    splitter.feed(b"8=FIX.4.4\x019=99999999\x01" + LOGON)
    assert splitter.frames() == [LOGON]
    assert splitter.garbled == 1


@given(st.lists(st.one_of(st.binary(max_size=40), st.just(LOGON)), max_size=10), st.data())
def test_garbage_never_raises_and_a_frame_after_plain_garbage_is_found(
    chunks: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(chunks) + LOGON
    splitter = FrameSplitter()
    frames: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = data.draw(st.integers(min_value=1, max_value=64))
        splitter.feed(stream[pos : pos + step])
        pos += step
        frames += splitter.frames()
    for frame in frames:
        parse_frame(frame)  # never raises
    if all(b"8=" not in chunk for chunk in chunks if chunk != LOGON):
        # Garbage that cannot start a frame never hides a good message after it.
        assert frames.count(LOGON) == chunks.count(LOGON) + 1
        assert splitter.buffered < len(LOGON)
