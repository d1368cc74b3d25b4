"""``h2send.frame_data`` against h2's own ``send_data``: the same bytes, the same windows.

Each example builds two server connections in the same state (the same client bytes
replayed into each: windows, frame size, stream half-closed or not), sends the same
messages on one with ``frame_data`` and on the other with h2's ``send_data`` chunked
as a careful caller chunks (``min(window, max frame, rest)``), opening the windows
between messages, and compares the bytes on the wire and every window h2 keeps.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service.h2send import frame_data

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/s/m"),
    (b":authority", b"x"),
]


def _pair(
    initial_window: int, connection_increment: int, max_frame: int, half_closed: bool
) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection, int]:
    """A client and a server connection with one request stream open on the server."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    client.initiate_connection()
    client.update_settings(
        {
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame,
        }
    )
    if connection_increment:
        client.increment_flow_control_window(connection_increment)
    server.initiate_connection()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST, end_stream=half_closed)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the client's SETTINGS ACK
    server.send_headers(stream_id, [(b":status", b"200")])
    server.data_to_send()
    return client, server, stream_id


def _windows(conn: h2.connection.H2Connection, stream_id: int) -> tuple[int, int, int]:
    return (
        conn.outbound_flow_control_window,
        conn.streams[stream_id].outbound_flow_control_window,
        conn.local_flow_control_window(stream_id),
    )


def _with_h2(conn: h2.connection.H2Connection, stream_id: int, data: bytes) -> tuple[bytes, int]:
    sent = 0
    while sent < len(data):
        size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        size = min(size, len(data) - sent)
        if size <= 0:
            break
        conn.send_data(stream_id, data[sent : sent + size])
        sent += size
    return conn.data_to_send(), sent


def _ours(conn: h2.connection.H2Connection, stream_id: int, data: bytes) -> tuple[bytes, int]:
    pieces, sent = frame_data(conn, stream_id, data)
    return b"".join(pieces), sent


@given(
    initial_window=st.integers(0, 70_000),
    connection_increment=st.integers(0, 100_000),
    max_frame=st.integers(16_384, 40_000),
    half_closed=st.booleans(),
    messages=st.lists(
        st.tuples(st.integers(0, 50_000), st.integers(0, 60_000), st.integers(0, 60_000)),
        min_size=1,
        max_size=5,
    ),
)
def test_frame_data_matches_h2_byte_for_byte_and_window_for_window(
    initial_window: int,
    connection_increment: int,
    max_frame: int,
    half_closed: bool,
    messages: list[tuple[int, int, int]],
) -> None:
    reference = _pair(initial_window, connection_increment, max_frame, half_closed)
    ours = _pair(initial_window, connection_increment, max_frame, half_closed)
    for number, (length, stream_more, connection_more) in enumerate(messages):
        data = bytes((number + i) % 251 for i in range(length))
        expected, expected_sent = _with_h2(reference[1], reference[2], data)
        got, sent = _ours(ours[1], ours[2], data)
        assert got == expected
        assert sent == expected_sent
        assert _windows(ours[1], ours[2]) == _windows(reference[1], reference[2])
        for client, server, stream_id in (reference, ours):
            # The client reads what it got and opens its windows for more.
            client.receive_data(got)
            if stream_more:
                client.increment_flow_control_window(stream_more, stream_id=stream_id)
            if connection_more:
                client.increment_flow_control_window(connection_more)
            server.receive_data(client.data_to_send())
        assert _windows(ours[1], ours[2]) == _windows(reference[1], reference[2])


def test_frame_data_does_not_copy_the_payload() -> None:
    _, server, stream_id = _pair(65_535, 0, 16_384, False)
    data = bytes(40_000)
    pieces, sent = frame_data(server, stream_id, data)
    assert sent == 40_000
    headers, payloads = pieces[0::2], pieces[1::2]
    assert [len(h) for h in headers] == [9, 9, 9]
    assert all(isinstance(p, memoryview) and p.obj is data for p in payloads)


def test_a_closed_window_frames_nothing() -> None:
    _, server, stream_id = _pair(0, 0, 16_384, False)
    assert frame_data(server, stream_id, b"abc") == ([], 0)
    assert server.data_to_send() == b""


@pytest.mark.parametrize("how", ["reset", "ended", "goaway", "unknown"])
def test_a_stream_that_cannot_send_raises_what_h2_raises(how: str) -> None:
    def prepare() -> tuple[h2.connection.H2Connection, int]:
        _, server, stream_id = _pair(65_535, 0, 16_384, False)
        if how == "reset":
            server.reset_stream(stream_id)
        elif how == "ended":
            server.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        elif how == "goaway":
            server.close_connection()
        else:
            stream_id += 2
        server.data_to_send()
        return server, stream_id

    server, stream_id = prepare()
    with pytest.raises(h2.exceptions.ProtocolError) as by_h2:
        server.send_data(stream_id, b"abc")
    server, stream_id = prepare()
    with pytest.raises(h2.exceptions.ProtocolError) as by_us:
        frame_data(server, stream_id, b"abc")
    assert type(by_us.value) is type(by_h2.value)
    assert server.data_to_send() == b""
