"""HTTP/2 keepalive: a client silent for ``keepalive_interval`` gets a PING; one that does
not answer within ``keepalive_timeout`` is closed, its streams and slot freed.

Time is the autojump clock's: the server's 30 s and 20 s pass in no real time. The
clients are h2 on real loopback sockets: one answers PINGs (h2 does it by itself when
it reads), the other stopped reading (a frozen process, a pulled cable).
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import trio
import trio.testing

from dragonflybot.config import LimitsConfig
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher

HEADERS = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/orderbook.OrderbookAggregator/BookSummary"),
    (":authority", "test"),
    ("te", "trailers"),
    ("content-type", "application/grpc"),
]


async def _server(nursery: trio.Nursery, limits: LimitsConfig) -> GrpcServer:
    publisher = SummaryPublisher()
    server = GrpcServer(
        [BookSummaryService(publisher.books), HealthService(publisher.serving)],
        "127.0.0.1",
        0,
        limits=limits,
    )
    await nursery.start(server.serve)
    return server


async def _open_stream(port: int) -> tuple[trio.socket.SocketType, h2.connection.H2Connection]:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, HEADERS)
    conn.send_data(sid, b"\0\0\0\0\0", end_stream=True)
    await sock.send(conn.data_to_send())
    return sock, conn


async def test_a_client_that_stops_reading_is_closed_after_an_unanswered_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = LimitsConfig(keepalive_interval=30.0, keepalive_timeout=20.0)
    async with trio.open_nursery() as nursery:
        server = await _server(nursery, limits)
        sock, _ = await _open_stream(server.port)
        # A stream is open (no book yet: it waits), so only keepalive can find us dead.
        start = trio.current_time()
        with trio.fail_after(120):
            while server.connection_count or not server.stats.keepalive_timeouts:  # noqa: ASYNC110 - counters
                await trio.sleep(1)
        assert 50 <= trio.current_time() - start <= 52  # 30 s of silence + 20 s unanswered
        assert server.stats.keepalive_timeouts == 1
        sock.close()
        server.shutdown()


async def test_a_client_that_answers_pings_stays(autojump_clock: trio.testing.MockClock) -> None:
    limits = LimitsConfig(keepalive_interval=30.0, keepalive_timeout=20.0)
    async with trio.open_nursery() as nursery:
        server = await _server(nursery, limits)
        sock, conn = await _open_stream(server.port)
        pings = 0
        with trio.move_on_after(300):
            while True:
                data = await sock.recv(65536)
                assert data, "the server closed an answering client"
                for event in conn.receive_data(data):
                    pings += isinstance(event, h2.events.PingReceived)
                await sock.send(conn.data_to_send())  # h2 queued the PING ACK
        assert pings >= 9  # one per 30 s of silence
        assert server.connection_count == 1
        assert server.stats.keepalive_timeouts == 0
        sock.close()
        server.shutdown()
