"""The subscriber's pub/sub reply reader (sans-I/O, hiredis underneath): no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.bus.connection import is_bus_failure
from dragonflybot.bus.pubsub_wire import PING, BusProtocolError, PubSubReader, subscribe_command


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(*items: bytes) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(bulk(i) for i in items)


def message(channel: bytes, payload: bytes, *, sharded: bool = False) -> bytes:
    return array(b"smessage" if sharded else b"message", channel, payload)


def confirmation(channel: bytes, count: int, *, sharded: bool = False) -> bytes:
    kind = b"ssubscribe" if sharded else b"subscribe"
    return b"*3\r\n" + bulk(kind) + bulk(channel) + b":%d\r\n" % count


PONG = array(b"pong", b"")


def test_requests_are_resp_commands() -> None:
    assert subscribe_command(["a:{x}", "b"], sharded=False) == (
        b"*3\r\n$9\r\nSUBSCRIBE\r\n$5\r\na:{x}\r\n$1\r\nb\r\n"
    )
    assert subscribe_command(["c"], sharded=True) == b"*2\r\n$10\r\nSSUBSCRIBE\r\n$1\r\nc\r\n"
    assert PING == b"*1\r\n$4\r\nPING\r\n"


_payloads = st.binary(max_size=300)
_replies = st.lists(
    st.one_of(
        st.tuples(st.just("message"), _payloads, st.booleans()),
        st.tuples(st.just("confirm"), st.just(b""), st.booleans()),
        st.tuples(st.just("pong"), st.just(b""), st.just(False)),
    ),
    max_size=30,
)


@given(_replies, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20))
def test_any_split_of_the_stream_gives_the_payloads_in_order(
    replies: list[tuple[str, bytes, bool]], cuts: list[int]
) -> None:
    stream = b""
    expected: list[bytes] = []
    confirmations = pongs = 0
    for kind, payload, sharded in replies:
        if kind == "message":
            stream += message(b"dfb:{view.a.B-C}", payload, sharded=sharded)
            expected.append(payload)
        elif kind == "confirm":
            stream += confirmation(b"dfb:{x}", confirmations + 1, sharded=sharded)
            confirmations += 1
        else:
            stream += PONG
            pongs += 1
    reader = PubSubReader()
    reader.expect_confirmations(confirmations)
    got: list[bytes] = []
    position = 0
    index = 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        index += 1
        got += reader.feed(stream[position : position + size])
        position += size
    assert got == expected
    assert reader.unconfirmed == 0
    assert reader.pongs == pongs


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"-MOVED 3999 127.0.0.1:6381\r\n", "MOVED"),
        (b"-NOAUTH Authentication required.\r\n", "NOAUTH"),
        (b"*3\r\n$12\r\nsunsubscribe\r\n$3\r\nabc\r\n:0\r\n", "dropped"),
        (b"*3\r\n$11\r\nunsubscribe\r\n$3\r\nabc\r\n:0\r\n", "dropped"),
        (b"+OK\r\n", "unexpected"),
        (b":12\r\n", "unexpected"),
        (array(b"message", b"only two"), "unexpected"),
        (b"!not resp\r\n", "malformed"),
    ],
)
def test_errors_drops_and_garbage_end_the_session(data: bytes, says: str) -> None:
    reader = PubSubReader()
    # A message before the bad reply is still handed over by an earlier feed.
    assert reader.feed(message(b"c", b"first")) == [b"first"]
    with pytest.raises(BusProtocolError, match=says) as raised:
        reader.feed(data)
    assert is_bus_failure(raised.value)


def test_a_resp3_style_pong_counts() -> None:
    reader = PubSubReader()
    assert reader.feed(b"+PONG\r\n") == []
    assert reader.pongs == 1
