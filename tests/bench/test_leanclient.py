"""The lean many-connection benchmark client against the real server on an ephemeral port.

The fan-out suites count this client's messages and trust its record of how each stream
ended, and its hand-written DATA/PING path replaces h2's: so its messages are checked
byte for byte against ``h2client``'s (h2 throughout) on the same server, its windows
against a fast stream, its PING answers and its frame splitter (any cut of the bytes,
padding, several messages per frame and messages over several frames) with hypothesis.
"""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio
import trio.lowlevel
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.h2client import BOOK_SUMMARY, WINDOW, frame_message, run_stream
from benchmarks.leanclient import ACK_AT, LeanStream, run_client
from dragonflybot.service.messages import Summary
from tests.bench.test_h2client import numbered, serving


async def lean_stream(
    target: str, got: list[bytes], *, cut: int = 0, stream: LeanStream | None = None
) -> LeanStream:
    """Drive one ``LeanStream`` over a trio socket until its call ends; ``cut``: feed the
    reads in pieces of that many bytes (frames and messages split anywhere)."""
    host, _, port = target.rpartition(":")
    call = stream or LeanStream(target, BOOK_SUMMARY)
    sock = await trio.open_tcp_stream(host, int(port))
    async with sock:
        await sock.send_all(call.start())
        while not call.outcome.ended:
            data = await sock.receive_some(65536)
            if not data:
                break
            pieces = [data[i : i + cut] for i in range(0, len(data), cut)] if cut else [data]
            for piece in pieces:
                got += call.receive(piece)
            out = call.data_to_send()
            if out:
                await sock.send_all(out)
    return call


def best_bid(message: bytes) -> float | None:
    bids = Summary.FromString(message).bids
    return bids[0].price if bids else None


async def test_messages_are_byte_for_byte_those_h2_reads() -> None:
    async with serving() as (send, port):
        target = f"127.0.0.1:{port}"
        lean: list[bytes] = []
        reference: list[bytes] = []
        async with trio.open_nursery() as nursery:
            await send.send(numbered("binance", 10, levels=3))
            nursery.start_soon(lean_stream, target, lean)
            nursery.start_soon(lambda: lean_stream(target, [], cut=7))  # split everywhere
            nursery.start_soon(
                run_stream, target, BOOK_SUMMARY, b"", lambda _t, m: reference.append(m)
            )
            for n in (10, 11, 12, 13):
                if n > 10:
                    await send.send(numbered("binance", n, levels=3))
                with trio.fail_after(10):
                    while not (  # noqa: ASYNC110 - each state reaches both clients
                        any(best_bid(m) == n for m in lean)
                        and any(best_bid(m) == n for m in reference)
                    ):
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert [best_bid(m) for m in lean] == [10.0, 11.0, 12.0, 13.0]
    assert lean == reference


async def test_a_split_read_gives_the_same_messages() -> None:
    async with serving() as (send, port):
        target = f"127.0.0.1:{port}"
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            await send.send(numbered("binance", 5, levels=5))
            nursery.start_soon(lambda: lean_stream(target, got, cut=3))
            for n in (5, 6, 7):
                if n > 5:
                    await send.send(numbered("binance", n, levels=5))
                with trio.fail_after(10):
                    while not any(best_bid(m) == n for m in got):  # noqa: ASYNC110
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert [best_bid(m) for m in got] == [5.0, 6.0, 7.0]


async def test_a_fast_stream_is_acknowledged_and_never_stalls() -> None:
    """Over 1.5 windows of Summaries: without WINDOW_UPDATEs the server would stop once
    the 1 MiB this client granted is used up, and this would never finish."""
    async with serving() as (send, port):
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lean_stream, f"127.0.0.1:{port}", got)
            n = 1
            with trio.fail_after(120):
                while sum(len(m) + 5 for m in got) <= WINDOW * 3 // 2:
                    n += 1
                    await send.send(numbered("binance", n, levels=5))
                    await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    assert sum(len(m) + 5 for m in got) > WINDOW * 3 // 2


async def test_the_end_of_the_stream_is_recorded() -> None:
    got: list[bytes] = []
    calls: list[LeanStream] = []

    async def read(target: str) -> None:
        calls.append(await lean_stream(target, got))

    async with trio.open_nursery() as nursery, serving() as (send, port):
        await send.send(numbered("binance", 3))
        nursery.start_soon(read, f"127.0.0.1:{port}")
        with trio.fail_after(10):
            while not got:  # noqa: ASYNC110
                await trio.sleep(0.01)
        # serving() shut the server down: the call ends with its trailers
    assert [c.outcome.describe() for c in calls] == ["grpc-status 14 'server is shutting down'"]


async def test_the_client_process_counts_and_records_each_end() -> None:
    """``run_client`` (the process body) over the pipe protocol: "connected", "stop", one
    result per target; a target refusing the connection is recorded as such."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    parent, child = multiprocessing.Pipe()
    results: list[Any] = []
    async with serving() as (send, port):
        await send.send(numbered("binance", 1))
        target = f"127.0.0.1:{port}"
        async with trio.open_nursery() as nursery:

            async def client() -> None:
                results.extend(
                    await trio.to_thread.run_sync(
                        run_client, child, [target, target, refused], False, 0.0
                    )
                )

            nursery.start_soon(client)
            assert await trio.to_thread.run_sync(parent.poll, 30)
            assert parent.recv() == "connected"
            for n in range(2, 12):
                await send.send(numbered("binance", n))
                await trio.sleep(0.05)
            parent.send("stop")
    parent.close()
    child.close()
    (c1, first1, last1, end1), (c2, _, _, end2), (c3, _, _, end3) = results
    assert end1 == end2 == "open"
    assert end3 == "connect: ECONNREFUSED"
    assert c3 == 0
    assert 1 <= c1 <= 10 and 1 <= c2 <= 10
    assert first1 <= last1


def server_for(call: LeanStream) -> h2.connection.H2Connection:
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(call.start())
    server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
    return server


def test_pings_are_answered_with_their_data() -> None:
    call = LeanStream("x:1", BOOK_SUMMARY)
    server = server_for(call)
    server.ping(b"12345678")
    call.receive(server.data_to_send())
    events = server.receive_data(call.data_to_send())
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [
        b"12345678"
    ]


def test_windows_are_given_back_in_batches() -> None:
    """No WINDOW_UPDATE until half the window is used, then one for the stream and one
    for the connection covering every byte received."""
    call = LeanStream("x:1", BOOK_SUMMARY)
    server = server_for(call)
    call.receive(server.data_to_send())
    server.receive_data(call.data_to_send())
    sent = 0
    updates: list[h2.events.WindowUpdated] = []
    while sent < ACK_AT:
        assert not updates
        server.send_data(1, frame_message(bytes(16_000)))
        sent += 16_005
        assert len(call.receive(server.data_to_send())) == 1
        updates += [
            e
            for e in server.receive_data(call.data_to_send())
            if isinstance(e, h2.events.WindowUpdated)
        ]
    assert sorted(u.stream_id for u in updates) == [0, 1]
    assert all(u.delta == sent for u in updates)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=400), max_size=8),
    st.lists(st.integers(1, 60), min_size=1, max_size=20),
    st.integers(1, 300),
    st.integers(0, 20),
    st.booleans(),
)
def test_the_frame_splitter_returns_every_message_however_the_bytes_are_cut(
    messages: list[bytes], cuts: list[int], frame: int, pad: int, ping: bool
) -> None:
    """Messages framed in DATA frames of any size (a message over several frames or
    several in one, padded or not), a PING among them, then the trailers; the bytes cut
    anywhere: every message out in order, the PING answered, the end recorded."""
    call = LeanStream("x:1", BOOK_SUMMARY)
    server = server_for(call)
    body = b"".join(frame_message(m) for m in messages)
    for i in range(0, len(body), frame):
        server.send_data(1, body[i : i + frame], pad_length=pad or None)
        if ping and i == 0:
            server.ping(b"abcdefgh")
    server.send_headers(1, [("grpc-status", "0")], end_stream=True)
    data = server.data_to_send()
    out: list[bytes] = []
    pos = i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += call.receive(data[pos : pos + step])
        pos += step
        i += 1
    assert out == messages
    assert call.pending == 0
    assert call.outcome.describe() == "grpc-status 0 ''"
    events = server.receive_data(call.data_to_send())
    pings = [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)]
    assert pings == ([b"abcdefgh"] if ping and body else [])
