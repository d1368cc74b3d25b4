"""``SendQueue``: direct writes never overtake queued bytes nor a write in progress.

A model of one socket: the kernel takes what ``direct`` is allowed to take (a random
budget, sometimes nothing: ``BlockingIOError``), and a writer task takes the queue and
finishes its write at random points. Whatever the interleaving, the bytes on the wire
are exactly the bytes written, in order, and ``direct`` is called only while nothing is
queued and nothing is in flight.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service.sendqueue import SendQueue


class Kernel:
    def __init__(self) -> None:
        self.wire = bytearray()
        self.budget = 0
        self.queue: SendQueue | None = None
        self.calls = 0

    def send(self, data: bytes) -> int:
        assert self.queue is not None
        # The invariant: a direct write has nothing ahead of it.
        assert self.queue.queued == 0
        assert self.queue.in_flight == 0
        self.calls += 1
        if self.budget == 0:
            raise BlockingIOError
        taken = min(self.budget, len(data))
        self.wire += data[:taken]
        return taken


step = st.one_of(
    st.tuples(st.just("write"), st.binary(min_size=0, max_size=40), st.integers(0, 50)),
    st.tuples(st.just("take"), st.just(b""), st.just(0)),
    st.tuples(st.just("done"), st.just(b""), st.just(0)),
)


@given(steps=st.lists(step, max_size=60), direct=st.booleans())
def test_the_wire_carries_every_write_in_order(
    steps: list[tuple[str, bytes, int]], direct: bool
) -> None:
    kernel = Kernel()
    queue = SendQueue(kernel.send if direct else None)
    kernel.queue = queue
    written = bytearray()
    in_hand = b""  # what the writer task took and is writing
    for kind, data, budget in steps:
        if kind == "write":
            kernel.budget = budget
            calls = kernel.calls
            woke = queue.write(data)
            written += data
            if not direct:
                assert woke == bool(data)
                assert kernel.calls == calls
            assert woke == (queue.queued > 0 and bool(data))
        elif kind == "take" and not queue.in_flight and queue.queued:
            in_hand = queue.take()
            assert queue.in_flight == len(in_hand)
        elif kind == "done" and queue.in_flight:
            kernel.wire += in_hand
            queue.done()
    if queue.in_flight:
        kernel.wire += in_hand
        queue.done()
    if queue.queued:
        kernel.wire += queue.take()
        queue.done()
    assert bytes(kernel.wire) == bytes(written)
    assert queue.pending == 0


def test_what_the_kernel_did_not_take_is_queued_behind_it() -> None:
    kernel = Kernel()
    queue = SendQueue(kernel.send)
    kernel.queue = queue
    kernel.budget = 3
    assert queue.write(b"abcdef") is True
    assert queue.queued == 3
    assert queue.direct_bytes == 3
    kernel.budget = 100
    assert queue.write(b"gh") is True  # behind the queued bytes, not direct
    assert kernel.calls == 1
    assert queue.take() == b"defgh"
    assert queue.write(b"ij") is True  # a write is in flight: queued
    assert kernel.calls == 1
    queue.done()
    assert queue.take() == b"ij"
    queue.done()
    assert queue.write(b"kl") is False  # nothing ahead: direct, all taken
    assert bytes(kernel.wire) == b"abckl"


def test_a_dead_peer_raises_and_queues_nothing() -> None:
    def reset(data: bytes) -> int:
        raise ConnectionResetError

    queue = SendQueue(reset)
    with pytest.raises(ConnectionResetError):
        queue.write(b"abc")
    assert queue.pending == 0
