"""Bidirectional streams (reflection): a flood is throttled by flow control, never buffered.

A client-streaming method keeps reading requests while it answers, so a client
that sends requests faster than it reads answers would make the server buffer
without bound if every DATA frame were acknowledged on arrival. The server
acknowledges a stream's DATA only while the handler keeps up (a few messages
queued at most); past that the client's window closes and the client waits.
Sending past the window is a flow-control error: GOAWAY and close.
"""

from __future__ import annotations

import h2.errors
import h2.events
import h2.exceptions
import trio
import trio.lowlevel

from dragonflybot.service.proto import reflection_v1_pb2

from .conftest import RSS_GROWTH_KB
from .helpers import (
    GRPC_HEADERS,
    PREFACE,
    SETTINGS_EMPTY,
    Outcome,
    RawH2,
    ServerProcess,
    frame,
    read_goaway,
    watching,
)

REFLECTION = b"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
LIST = reflection_v1_pb2.ServerReflectionRequest(list_services="").SerializeToString()
MESSAGE = b"\0" + len(LIST).to_bytes(4, "big") + LIST
BIDI_HEADERS = [(n, REFLECTION if n == b":path" else v) for n, v in GRPC_HEADERS]
FLOW_CONTROL_ERROR = int(h2.errors.ErrorCodes.FLOW_CONTROL_ERROR)


async def _flood_without_reading(client: RawH2, sid: int, seconds: float) -> tuple[int, int]:
    """Send requests as fast as the window allows, never acknowledging an answer.

    Returns the bytes sent and the flow-controlled bytes received (unacknowledged).
    """
    sent = received = 0
    batch = MESSAGE * 100
    with trio.move_on_after(seconds):
        while True:
            room = client.h2.local_flow_control_window(sid)
            if room >= len(MESSAGE):
                chunk = batch[: min(room, len(batch)) // len(MESSAGE) * len(MESSAGE)]
                client.h2.send_data(sid, chunk)
                sent += len(chunk)
                await client.flush()
                await trio.lowlevel.checkpoint()
                continue
            data = await client.sock.recv(65536)
            if not data:
                break
            for event in client.h2.receive_data(data):
                assert not isinstance(event, h2.events.ConnectionTerminated)
                if isinstance(event, h2.events.DataReceived):
                    received += event.flow_controlled_length
            await client.flush()
    return sent, received


async def test_a_bidi_flood_is_throttled_by_the_window(server: ServerProcess) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        client = await RawH2.connect(server.port)
        await client.pump(0.3)
        sid = client.h2.get_next_available_stream_id()
        client.h2.send_headers(sid, BIDI_HEADERS)
        await client.flush()
        sent, received = await _flood_without_reading(client, sid, 1.5)
        # The server answered until our window for its answers closed, queued a few
        # requests, and then stopped acknowledging: what we got to send is about one
        # stream window plus what it answered, not 1.5 s of a loopback flood.
        assert client.h2.local_flow_control_window(sid) < len(MESSAGE)
        assert sent < 512 * 1024, sent
        report = await server.stats()
        assert report["open_streams"] == 2  # the flood's stream (idle now) and the watcher's
        await watcher.wait_more()
        # A reset frees the stream at once, handler and queued requests with it.
        client.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        await server.wait_for(lambda r: r["open_streams"] == 1)
        # What the server held back is given back to the connection's window (shared by
        # every stream): a new stream on the same connection is served.
        client.h2.acknowledge_received_data(received, sid)  # our side of the same deal
        await client.flush()
        again = _open_bidi(client)
        room = 3 * len(MESSAGE)
        await client.pump(2.0, until=lambda: client.h2.local_flow_control_window(again) >= room)
        assert client.h2.local_flow_control_window(again) >= room
        client.h2.send_data(again, MESSAGE * 3, end_stream=True)
        await client.flush()
        await client.pump(5, until=lambda: client.done(again))
        assert client.outcomes[again].grpc_status == 0
        assert len(_answers(client.outcomes[again].data)) == 3
        client.close()
        await watcher.wait_more()
    assert server.alive
    assert server.rss_kb() - rss < RSS_GROWTH_KB


async def test_sending_past_the_window_is_a_flow_control_error(server: ServerProcess) -> None:
    async with watching(server.target) as watcher:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", server.port))
        block = b"".join(
            b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v for n, v in BIDI_HEADERS
        )
        # 200 KiB of requests on one stream, never reading an answer: far past the
        # 64 KiB the server's window allows.
        payload = MESSAGE * (16_000 // len(MESSAGE))
        flood = b"".join(frame(0x0, 0, 1, payload) for _ in range(13))
        await sock.send(PREFACE + SETTINGS_EMPTY + frame(0x1, 0x4, 1, block))
        with trio.move_on_after(5):
            await sock.send(flood)
        goaway, closed = await read_goaway(sock)
        sock.close()
        assert (goaway, closed) == (FLOW_CONTROL_ERROR, True)
        await server.wait_for(lambda r: r["open_streams"] == 1)
        await watcher.wait_more()


def _open_bidi(client: RawH2) -> int:
    sid: int = client.h2.get_next_available_stream_id()
    client.h2.send_headers(sid, BIDI_HEADERS)
    client.outcomes[sid] = Outcome()
    return sid


async def test_an_idle_bidi_stream_times_out(server: ServerProcess) -> None:
    # idle_timeout is 2 s in these tests: one request answered, then silence, then the end.
    client = await RawH2.connect(server.port)
    await client.pump(0.3)
    sid = _open_bidi(client)
    client.h2.send_data(sid, MESSAGE)
    await client.flush()
    await client.pump(6, until=lambda: client.done(sid))
    outcome = client.outcomes[sid]
    assert outcome.ended
    assert outcome.grpc_status == 4  # DEADLINE_EXCEEDED
    assert len(_answers(outcome.data)) == 1
    client.close()
    await server.wait_for(lambda r: r["open_streams"] == 0)


async def test_grpc_timeout_ends_a_silent_bidi_stream(server: ServerProcess) -> None:
    # 300 ms, well before the 2 s idle timeout: the server's own deadline ends it.
    client = await RawH2.connect(server.port)
    await client.pump(0.3)
    sid: int = client.h2.get_next_available_stream_id()
    client.h2.send_headers(sid, [*BIDI_HEADERS, (b"grpc-timeout", b"300m")])
    client.outcomes[sid] = Outcome()
    client.h2.send_data(sid, MESSAGE)
    await client.flush()
    await client.pump(1.5, until=lambda: client.done(sid))
    outcome = client.outcomes[sid]
    assert outcome.grpc_status == 4  # DEADLINE_EXCEEDED
    assert (dict(outcome.trailers) or dict(outcome.headers)).get(b"grpc-message") == (
        b"deadline exceeded"
    )
    assert len(_answers(outcome.data)) == 1
    client.close()


async def test_bidi_requests_are_answered_in_order_until_the_client_ends(
    server: ServerProcess,
) -> None:
    client = await RawH2.connect(server.port)
    await client.pump(0.3)
    sid = _open_bidi(client)
    client.h2.send_data(sid, MESSAGE * 3, end_stream=True)
    await client.flush()
    await client.pump(3, until=lambda: client.done(sid))
    assert client.outcomes[sid].grpc_status == 0
    answers = _answers(client.outcomes[sid].data)
    assert len(answers) == 3
    assert all(a.HasField("list_services_response") for a in answers)
    client.close()


def _answers(data: bytes) -> list[reflection_v1_pb2.ServerReflectionResponse]:
    out = []
    while data:
        length = int.from_bytes(data[1:5], "big")
        out.append(reflection_v1_pb2.ServerReflectionResponse.FromString(data[5 : 5 + length]))
        data = data[5 + length :]
    return out
