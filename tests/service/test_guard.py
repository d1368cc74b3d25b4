"""FrameGuard: frame counting independent of how the bytes arrive, and each budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service.guard import Flood, FrameGuard, TokenBucket

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def guard(**overrides: float) -> FrameGuard:
    values: dict[str, float] = {
        "control_rate": 10.0,
        "control_burst": 100,
        "reset_rate": 5.0,
        "reset_burst": 20,
        "max_header_block": 1000,
    }
    values.update(overrides)
    return FrameGuard(
        control_rate=values["control_rate"],
        control_burst=int(values["control_burst"]),
        reset_rate=values["reset_rate"],
        reset_burst=int(values["reset_burst"]),
        max_header_block=int(values["max_header_block"]),
    )


FRAMES = st.lists(
    st.tuples(
        st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x8, 0x9]),
        st.integers(min_value=0, max_value=255),
        st.binary(max_size=100),
    ),
    max_size=30,
)


@given(FRAMES, st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_the_verdict_does_not_depend_on_how_bytes_are_split(
    frames: list[tuple[int, int, bytes]], sizes: list[int]
) -> None:
    data = PREFACE + b"".join(frame(k, f, 1, p) for k, f, p in frames)

    def run(chunks: list[bytes]) -> tuple[int, str | None]:
        g = guard(control_burst=15, max_header_block=300)
        try:
            for chunk in chunks:
                g.feed(chunk, 0.0)
        except Flood as flood:
            return g.frames, flood.kind
        return g.frames, None

    chunks, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[pos : pos + size])
        pos += size
        i += 1
    assert run(chunks) == run([data])


def test_pings_past_the_burst_are_a_flood_and_the_bucket_refills() -> None:
    g = guard()
    g.feed(PREFACE, 0.0)
    ping = frame(0x6, 0, 0, bytes(8))
    g.feed(ping * 100, 0.0)
    with pytest.raises(Flood) as info:
        g.feed(ping, 0.0)
    assert info.value.kind == "control"
    g = guard()
    g.feed(PREFACE + ping * 100, 0.0)
    g.feed(ping * 10, 1.0)  # 10 per second refill


def test_data_sent_refunds_window_updates() -> None:
    g = guard(control_burst=10)
    g.feed(PREFACE, 0.0)
    update = frame(0x8, 0, 1, (100).to_bytes(4, "big"))
    for _ in range(100):
        g.credit(1)
        g.feed(update, 0.0)


def test_real_data_and_final_frames_are_free() -> None:
    g = guard(control_burst=1)
    g.feed(PREFACE, 0.0)
    g.feed(frame(0x0, 0, 1, bytes(100)) * 1000, 0.0)
    g.feed(frame(0x0, 0x1, 1) * 1000, 0.0)


def test_small_data_frames_that_do_not_end_the_stream_are_control_frames() -> None:
    g = guard(control_burst=5)
    g.feed(PREFACE + frame(0x0, 0, 1, b"x") * 5, 0.0)
    with pytest.raises(Flood):
        g.feed(frame(0x0, 0, 1, b""), 0.0)


def test_a_header_block_is_bounded_across_continuations() -> None:
    g = guard(max_header_block=1000)
    g.feed(PREFACE + frame(0x1, 0, 1, bytes(400)) + frame(0x9, 0, 1, bytes(400)), 0.0)
    with pytest.raises(Flood) as info:
        g.feed(frame(0x9, 0, 1, bytes(400)), 0.0)
    assert info.value.kind == "header_block"
    g = guard(max_header_block=1000)
    g.feed(PREFACE + frame(0x1, 0x4, 1, bytes(900)), 0.0)  # complete: the count restarts
    g.feed(frame(0x1, 0x4, 3, bytes(900)), 0.0)


def test_resets_have_their_own_budget() -> None:
    g = guard(reset_burst=3, reset_rate=1.0)
    for _ in range(3):
        g.charge_reset(0.0)
    with pytest.raises(Flood) as info:
        g.charge_reset(0.0)
    assert info.value.kind == "reset"
    g.charge_reset(1.5)


@given(st.floats(min_value=0.1, max_value=1000), st.integers(min_value=1, max_value=1000))
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_time(
    rate: float, burst: int
) -> None:
    bucket = TokenBucket(rate, burst)
    granted = sum(bucket.take(t / 10) for t in range(100) for _ in range(50))
    assert granted <= burst + rate * 9.9 + 1
