"""DATA frames framed here instead of by h2: the one module that touches h2's internals.

Why: a Summary is the same bytes for every client, so the only per-client work a
send needs is a 9-byte frame header per DATA frame and the flow-control
arithmetic. h2's ``send_data`` does that through two state machines, a
``hyperframe.DataFrame`` object per frame, its ``serialize`` (a copy of the
payload), several debug log calls and a copy into its outbound buffer, and it
takes one frame per call, so a caller also asks ``local_flow_control_window``
(two dictionary look-ups and a ``min``) before each frame. Measured in
docs/performance.md ("The send path").

What stays exact: h2 remains the owner of the connection's state. ``frame_data``
writes through only in the states where h2's own ``send_data`` has no side effect
but the two window decrements (connection ``SERVER_OPEN`` or ``CLIENT_OPEN``, stream
``OPEN`` or ``HALF_CLOSED_REMOTE``: their ``SEND_DATA`` transitions have no callback
and keep the state), and it makes the same two decrements. In any other state it
calls h2's ``send_data`` so the error (a closed stream, a connection after GOAWAY)
is h2's own. The frames are unpadded and never carry END_STREAM (gRPC ends a
stream with trailers). The output is byte-for-byte what h2 produces for the same
chunking, and the windows after it are the same; the tests compare both with h2
itself over random windows, frame sizes and payloads (hypothesis).

Kept in step with h2 3.2 (the attributes read here: ``streams``,
``state_machine.state``, ``outbound_flow_control_window`` of the connection and of
the stream, ``max_outbound_frame_size``); a change there fails those tests.
"""

from __future__ import annotations

from typing import Final

import h2.connection
import h2.exceptions
import h2.stream

_OPEN_CONNECTION: Final = frozenset(
    {h2.connection.ConnectionState.SERVER_OPEN, h2.connection.ConnectionState.CLIENT_OPEN}
)
_SENDING_STREAM: Final = frozenset(
    {h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE}
)
_DATA_TYPE_FLAGS: Final = b"\x00\x00"
"""Frame type DATA (0), no flags: unpadded, not ending the stream."""


def frame_data(
    conn: h2.connection.H2Connection, stream_id: int, data: bytes | memoryview
) -> tuple[list[bytes | memoryview], int]:
    """DATA frames for as much of ``data`` as the windows allow, and how much that is.

    Returns the pieces to write in order (each frame's header, then a slice of
    ``data``, not copied) and the number of bytes of ``data`` they carry; 0 when a
    window is closed. h2's windows are charged exactly as its ``send_data`` would
    charge them. Raises what h2 raises when the connection or the stream cannot send.
    """
    stream = conn.streams.get(stream_id)
    if (
        stream is None
        or conn.state_machine.state not in _OPEN_CONNECTION
        or stream.state_machine.state not in _SENDING_STREAM
    ):
        conn.send_data(stream_id, b"")  # raises h2's own error for this state
        raise h2.exceptions.ProtocolError(f"stream {stream_id} cannot send data")
    window = min(conn.outbound_flow_control_window, stream.outbound_flow_control_window)
    size = min(window, len(data))
    if size <= 0:
        return [], 0
    max_frame = conn.max_outbound_frame_size
    view = memoryview(data)
    tail = _DATA_TYPE_FLAGS + stream_id.to_bytes(4, "big")
    pieces: list[bytes | memoryview] = []
    start = 0
    while start < size:
        length = min(max_frame, size - start)
        pieces.append(length.to_bytes(3, "big") + tail)
        pieces.append(view[start : start + length])
        start += length
    conn.outbound_flow_control_window -= size
    stream.outbound_flow_control_window -= size
    return pieces, size
