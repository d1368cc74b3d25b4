"""The publisher's pipelined script calls, sans-I/O: replies matched in order, NOSCRIPT retried."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.bus.publisher import PUBLISH_BATCH
from dragonflybot.bus.pubsub_wire import BusProtocolError
from dragonflybot.bus.script_wire import ScriptPipeline, pack

NOSCRIPT = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"


def integer(n: int) -> bytes:
    return b":%d\r\n" % n


def commands(data: bytes) -> list[list[bytes]]:
    """What a server would read from ``data``: the commands, as argument lists."""
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (command := reader.gets()) is not False:
        assert isinstance(command, list)
        out.append(command)
    return out


def batch(wire: ScriptPipeline, n: int) -> bytes:
    keys = [f"k{i}" for i in range(n)]
    return wire.call(keys, [b"v"] * n + [f"c{i}" for i in range(n)])


def test_call_is_an_evalsha_of_the_script() -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    (command,) = commands(wire.call(["k"], [b"\x00data", "chan"]))
    assert command == [b"EVALSHA", wire.sha, b"1", b"k", b"\x00data", b"chan"]
    (load,) = commands(wire.handshake(0))
    assert load == [b"SCRIPT", b"LOAD", PUBLISH_BATCH.encode()]
    select, _ = commands(wire.handshake(3))
    assert select == [b"SELECT", b"3"]


@given(sizes=st.lists(st.integers(1, 600), min_size=1, max_size=8), data=st.data())
def test_replies_are_acknowledged_in_order_however_they_are_split(
    sizes: list[int], data: st.DataObject
) -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    wire.handshake(2)
    for n in sizes:
        batch(wire, n)
    stream = b"+OK\r\n" + b"$40\r\n" + wire.sha + b"\r\n" + b"".join(integer(n) for n in sizes)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    acknowledged: list[int] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        replies = wire.feed(stream[start:end])
        assert replies.resend == b""
        acknowledged += replies.acknowledged
    assert acknowledged == sizes
    assert wire.in_flight == 0


def test_noscript_reloads_then_retries_every_call_in_flight_in_order() -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    for n in (1, 2, 3):
        batch(wire, n)
    replies = wire.feed(NOSCRIPT)
    assert replies.acknowledged == [] and replies.reloads == 1
    resent = commands(replies.resend)
    assert resent[0][:2] == [b"SCRIPT", b"LOAD"]
    assert [c[:3] for c in resent[1:]] == [
        [b"EVALSHA", wire.sha, str(n).encode()] for n in (1, 2, 3)
    ]
    # The calls already in flight fail the same way: expected, nothing more is sent.
    later = wire.feed(NOSCRIPT + NOSCRIPT)
    assert later.resend == b"" and later.acknowledged == []
    # A call sent after the reload queues behind the retries.
    batch(wire, 4)
    done = wire.feed(b"$40\r\n" + wire.sha + b"\r\n" + b"".join(integer(n) for n in (1, 2, 3, 4)))
    assert done.acknowledged == [1, 2, 3, 4]
    assert wire.in_flight == 0


def test_a_call_that_succeeded_although_a_retry_was_queued_counts_once() -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    batch(wire, 1)
    batch(wire, 2)
    assert wire.feed(NOSCRIPT).reloads == 1
    # Another client loaded the script between the two calls: the second ran.
    replies = wire.feed(integer(2) + b"$40\r\n" + wire.sha + b"\r\n" + integer(1) + integer(2))
    assert replies.acknowledged == [1, 2]


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (b"-OOM command not allowed when used memory > 'maxmemory'.\r\n", "refused"),
        (integer(7), "expected 1"),
        (b"+OK\r\n", "expected 1"),
        (b"*1\r\n:1\r\n", "expected 1"),
        (b"!!not resp\r\n", "malformed"),
    ],
)
def test_any_other_reply_to_a_call_ends_the_session(reply: bytes, complaint: str) -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    batch(wire, 1)
    with pytest.raises(BusProtocolError, match=complaint):
        wire.feed(reply)


def test_replies_out_of_turn_end_the_session() -> None:
    with pytest.raises(BusProtocolError, match="nobody asked"):
        ScriptPipeline(PUBLISH_BATCH).feed(integer(1))
    wire = ScriptPipeline(PUBLISH_BATCH)
    wire.handshake(1)
    with pytest.raises(BusProtocolError, match="SELECT answered"):
        wire.feed(b"-ERR DB index is out of range\r\n")
    wire = ScriptPipeline(PUBLISH_BATCH)
    wire.handshake(0)
    with pytest.raises(BusProtocolError, match="SCRIPT LOAD answered"):
        wire.feed(b"$40\r\n" + b"0" * 40 + b"\r\n")


def test_noscript_again_on_a_retry_ends_the_session() -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    batch(wire, 1)
    wire.feed(NOSCRIPT)
    with pytest.raises(BusProtocolError, match="vanished again"):
        wire.feed(b"$40\r\n" + wire.sha + b"\r\n" + NOSCRIPT)


def test_pack_is_resp() -> None:
    assert pack("SET", b"k", 3) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n3\r\n"


class ScriptCacheModel:
    """The few server rules the pipeline relies on (commands run in arrival order; the
    script cache can be flushed between any two): a model for the property below, not
    a stand-in for Redis (tests/bus/test_lean_publisher.py runs against the real one)."""

    def __init__(self, sha: bytes) -> None:
        self.sha = sha
        self.loaded = False
        self.inbox = hiredis.Reader()
        self.pending: list[list[bytes]] = []
        self.outbox = b""
        self.values: dict[bytes, list[bytes]] = {}

    def receive(self, data: bytes) -> None:
        self.inbox.feed(data)
        while (command := self.inbox.gets()) is not False:
            assert isinstance(command, list)
            self.pending.append(command)

    def run_one(self) -> None:
        command = self.pending.pop(0)
        if command[:2] == [b"SCRIPT", b"LOAD"]:
            self.loaded = True
            self.outbox += b"$40\r\n" + self.sha + b"\r\n"
            return
        assert command[:2] == [b"EVALSHA", self.sha]
        if not self.loaded:
            self.outbox += NOSCRIPT
            return
        n = int(command[2])
        keys, args = command[3 : 3 + n], command[3 + n :]
        for key, value in zip(keys, args[:n], strict=True):
            self.values.setdefault(key, []).append(value)
        self.outbox += integer(n)


@given(
    steps=st.lists(st.sampled_from(["call", "call", "run", "run", "deliver", "flush"]), max_size=60)
)
def test_a_flushed_cache_never_sends_a_key_back_nor_loses_a_call(steps: list[str]) -> None:
    wire = ScriptPipeline(PUBLISH_BATCH)
    server = ScriptCacheModel(wire.sha)
    server.receive(wire.handshake(0))
    calls = 0
    acknowledged: list[int] = []

    def deliver() -> None:
        replies = wire.feed(server.outbox)
        server.outbox = b""
        acknowledged.extend(replies.acknowledged)
        server.receive(replies.resend)

    try:
        for step in [*steps, *["run", "deliver"] * 200]:
            if step == "call":
                calls += 1
                server.receive(wire.call(["k"], [str(calls).encode(), "chan"]))
            elif step == "run" and server.pending:
                server.run_one()
            elif step == "deliver":
                deliver()
            elif step == "flush":
                server.loaded = False
    except BusProtocolError as exc:
        # Only a flush between a reload and its retries may end the session.
        assert "vanished again" in str(exc)
        return
    assert wire.in_flight == 0 and not server.pending
    assert acknowledged == [1] * calls
    written = [int(v) for v in server.values.get(b"k", [])]
    assert written == sorted(written)  # never back to an older value
    assert sorted(set(written)) == list(range(1, calls + 1))  # and none lost
