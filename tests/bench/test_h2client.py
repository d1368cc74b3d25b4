"""The benchmarks' raw-HTTP/2 gRPC client against the real server on an ephemeral port.

The latency and fan-out suites trust this client's messages byte for byte (they match
them to the states the service published) and its record of how each stream ended
(the GOAWAY investigation counts those), so both are checked here against the server
and against grpc's framing rules; the splitter is checked with hypothesis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import h2.errors
import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.h2client import (
    BOOK_SUMMARY,
    STREAM_BOOK,
    WINDOW,
    GrpcStream,
    H2ClientError,
    MessageSplitter,
    book_request,
    frame_message,
    run_stream,
)
from dragonflybot.aggregator import Aggregator
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.service import (
    BookServiceV1,
    BookSummaryService,
    GrpcServer,
    HealthService,
    InstrumentSource,
    SummaryPublisher,
)
from dragonflybot.service.book_v1_encoding import Book
from dragonflybot.service.messages import Summary


def numbered(venue: str, n: int, levels: int = 1) -> VenueView:
    """A view whose best bid is ``n`` (a received message tells which state)."""
    return VenueView(
        venue,
        tuple(Level(n * ONE - i, ONE) for i in range(levels)),
        tuple(Level(n * ONE + ONE + i, ONE) for i in range(levels)),
        None,
        time.monotonic_ns(),
    )


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[trio.MemorySendChannel[VenueUpdate], int]]:
    """Aggregator + gRPC server (BookSummary, Health, v1 BookService) on 127.0.0.1:0."""
    publisher = SummaryPublisher()
    source = InstrumentSource("ETH-BTC", ("binance",), 5, publisher.books)
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    server = GrpcServer(
        [
            BookSummaryService(publisher.books),
            HealthService(publisher.serving),
            BookServiceV1([source]),
        ],
        "127.0.0.1",
        0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(Aggregator(5, publisher).run, receive)
        port = await nursery.start(server.serve)
        yield send, port
        server.shutdown()
        with trio.move_on_after(5):
            await server.wait_closed()
        nursery.cancel_scope.cancel()


async def test_book_summary_messages_are_the_published_states() -> None:
    async with serving() as (send, port):
        got: list[tuple[int, bytes]] = []
        enough = trio.Event()

        def on_message(now: int, message: bytes) -> None:
            got.append((now, message))
            if len(got) == 4:
                enough.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_stream, f"127.0.0.1:{port}", BOOK_SUMMARY, b"", on_message)
            await send.send(numbered("binance", 10))
            with trio.fail_after(10):
                while len(got) < 1:  # noqa: ASYNC110 - the state at subscription first
                    await trio.sleep(0.01)
            for n in (11, 12, 13):
                await send.send(numbered("binance", n))
                with trio.fail_after(10):
                    while not any(  # noqa: ASYNC110 - wait for this state's Summary
                        Summary.FromString(m).bids and Summary.FromString(m).bids[0].price == n
                        for _, m in got
                    ):
                        await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    bids = [Summary.FromString(m).bids[0].price for _, m in got if Summary.FromString(m).bids]
    assert bids[-3:] == [11.0, 12.0, 13.0]
    stamps = [t for t, _ in got]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time_ns()) < 3600 * 10**9  # wall clock, not monotonic


async def test_stream_book_with_a_request_message() -> None:
    async with serving() as (send, port):
        await send.send(numbered("binance", 7))
        await trio.testing.wait_all_tasks_blocked()
        got: list[bytes] = []
        with trio.move_on_after(10) as scope:
            await run_stream(
                f"127.0.0.1:{port}",
                STREAM_BOOK,
                book_request("ETH-BTC", depth=1),
                lambda _t, m: (got.append(m), scope.cancel()),
            )
    assert scope.cancelled_caught
    book = Book.FromString(got[0])
    assert [level.price for level in book.bids] == [7.0]


async def test_an_error_status_is_the_outcome() -> None:
    async with serving() as (_send, port):
        with trio.fail_after(10):
            outcome = await run_stream(
                f"127.0.0.1:{port}", STREAM_BOOK, book_request("NOPE-NOPE"), lambda *_: None
            )
    assert outcome.grpc_status == 5  # NOT_FOUND, trailers-only
    assert outcome.describe().startswith("grpc-status 5")


async def test_a_fast_stream_is_acknowledged_and_never_stalls() -> None:
    """More than a 64 KiB window of Summaries: without WINDOW_UPDATEs the server would
    stop sending once the window this client granted (1 MiB) is used up."""
    async with serving() as (send, port):
        received = 0
        done = trio.Event()
        size = 0

        def on_message(_now: int, message: bytes) -> None:
            nonlocal received, size
            received += 1
            size += len(message) + 5
            if size > WINDOW * 3 // 2:
                done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_stream, f"127.0.0.1:{port}", BOOK_SUMMARY, b"", on_message)
            n = 1
            with trio.fail_after(120):
                while not done.is_set():
                    n += 1
                    await send.send(numbered("binance", n, levels=5))
                    await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
    assert size > WINDOW * 3 // 2


def test_pings_are_answered() -> None:
    """A server PING gets its ACK with the same data (the server's keepalive relies on it)."""
    call = GrpcStream("x:1", BOOK_SUMMARY)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(call.start())
    server.ping(b"12345678")
    call.receive(server.data_to_send())
    events = server.receive_data(call.data_to_send())
    acks = [e for e in events if isinstance(e, h2.events.PingAckReceived)]
    assert [a.ping_data for a in acks] == [b"12345678"]


def test_goaway_is_recorded_with_code_and_debug() -> None:
    call = GrpcStream("x:1", BOOK_SUMMARY)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(call.start())
    server.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too many")
    call.receive(server.data_to_send())
    assert call.outcome.ended
    assert call.outcome.describe() == "GOAWAY ENHANCE_YOUR_CALM 'too many'"


@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(1, 50), min_size=1, max_size=20),
)
def test_splitter_returns_every_message_however_the_bytes_are_cut(
    messages: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frame_message(m) for m in messages)
    splitter = MessageSplitter()
    out: list[bytes] = []
    pos = i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += splitter.feed(data[pos : pos + step])
        pos += step
        i += 1
    assert out == messages
    assert splitter.pending == 0


def test_splitter_rejects_compressed_and_oversized_messages() -> None:
    with pytest.raises(H2ClientError, match="compressed"):
        MessageSplitter().feed(b"\x01\x00\x00\x00\x01x")
    with pytest.raises(H2ClientError, match="bytes"):
        MessageSplitter().feed(b"\x00\xff\xff\xff\xff")


def test_ack_every_gives_bytes_back_once_that_many_arrived() -> None:
    """With ``ack_every`` the stream and the connection get WINDOW_UPDATEs as soon as that
    many bytes are unacknowledged, not after half of the 1 MiB window."""
    call = GrpcStream("x:1", BOOK_SUMMARY, ack_every=1000)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    server.receive_data(call.start())
    call.receive(server.data_to_send())
    server.receive_data(call.data_to_send())
    server.send_headers(1, [(":status", "200"), ("content-type", "application/grpc")])
    updates: list[h2.events.WindowUpdated] = []
    for n in range(3):
        server.send_data(1, frame_message(bytes(595)))  # 600 bytes on the wire each
        assert len(call.receive(server.data_to_send())) == 1
        events = server.receive_data(call.data_to_send())
        updates += [e for e in events if isinstance(e, h2.events.WindowUpdated)]
        if n == 0:
            assert not updates  # 600 < 1000: nothing yet
    assert sorted(u.stream_id for u in updates) == [0, 1]
    assert all(u.delta == 1200 for u in updates)


async def test_a_client_acknowledging_every_read_on_both_windows_is_not_cut() -> None:
    """WINDOW_UPDATEs for the stream and the connection after every read are legal HTTP/2:
    the frame guard refunds two control tokens per DATA frame sent, so such a client is
    never taken for a flood (it was cut with ENHANCE_YOUR_CALM when one was refunded)."""
    async with serving() as (send, port):
        received = 0
        outcome = None

        def on_message(_now: int, _message: bytes) -> None:
            nonlocal received
            received += 1

        async def client() -> None:
            nonlocal outcome
            outcome = await run_stream(
                f"127.0.0.1:{port}", BOOK_SUMMARY, b"", on_message, ack_every=1
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            with trio.fail_after(60):
                for n in range(2, 1_500):
                    await send.send(numbered("binance", n))
                    while received < n - 1 and outcome is None:  # noqa: ASYNC110
                        await trio.sleep(0.001)
                    if outcome is not None:
                        break
            nursery.cancel_scope.cancel()
    assert outcome is None, outcome.describe()
    assert received >= 1_498
