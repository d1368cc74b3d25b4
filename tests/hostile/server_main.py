"""A gRPC server in its own process for the hostile-client tests (and benchmarks/hostile.py).

    python tests/hostile/server_main.py '<LimitsConfig as JSON>' [NOFILE]

Serves ``BookSummary``, Health and reflection (bidirectional) on 127.0.0.1 (an
ephemeral port, printed as ``PORT <n>``) from a fake venue that changes its book
every 10 ms, so a watching client sees ~100 Summaries per second. ``NOFILE``
lowers ``RLIMIT_NOFILE`` first (the EMFILE test). SIGTERM or SIGINT: streams end
with UNAVAILABLE, GOAWAY, exit 0. A separate process, so that what an attack does
to the server (memory, descriptors, a stall, an exit) is measured from the outside,
as an operator would see it.
"""

from __future__ import annotations

import resource
import signal
import sys
import time

import attrs
import msgspec
import trio

from dragonflybot.aggregator import Aggregator
from dragonflybot.config import LimitsConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import ONE
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher
from dragonflybot.service.reflection import reflection_servicers

DEPTH = 10
PERIOD = 0.01


def _view(n: int) -> VenueView:
    return VenueView(
        "binance",
        tuple(Level(n * ONE - i, ONE) for i in range(DEPTH)),
        tuple(Level(n * ONE + ONE + i, ONE) for i in range(DEPTH)),
        None,
        time.monotonic_ns(),
    )


async def _feed(send: trio.MemorySendChannel[VenueUpdate]) -> None:
    async with send:
        n = 0
        while True:
            n += 1
            await send.send(_view(n))
            await trio.sleep(PERIOD)


async def main(limits: LimitsConfig) -> None:
    publisher = SummaryPublisher()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    servicers = [BookSummaryService(publisher.books), HealthService(publisher.serving)]
    server = GrpcServer(
        [*servicers, *reflection_servicers(servicers)],
        "127.0.0.1",
        0,
        limits=limits,
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(Aggregator(DEPTH, publisher).run, receive)
            nursery.start_soon(_feed, send)
            port = await nursery.start(server.serve)
            print(f"PORT {port}", flush=True)
            async for signum in signals:
                if signum != signal.SIGUSR1:
                    break
                _report(server)
            server.shutdown()
            with trio.move_on_after(1.0):
                await server.wait_closed()
            _report(server)
            nursery.cancel_scope.cancel()


def _report(server: GrpcServer) -> None:
    """One JSON line: the server's counters, open connections and streams."""
    report = attrs.asdict(server.stats)
    report["open_connections"] = server.connection_count
    report["open_streams"] = sum(c.stream_count for c in server.connections())
    print("STATS " + msgspec.json.encode(report).decode(), flush=True)


if __name__ == "__main__":
    config = msgspec.json.decode(sys.argv[1] if len(sys.argv) > 1 else "{}", type=LimitsConfig)
    if len(sys.argv) > 2:
        nofile = int(sys.argv[2])
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    trio.run(main, config)
