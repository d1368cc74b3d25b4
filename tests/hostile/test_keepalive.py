"""Issue 13: keepalive PINGs find a client that stopped reading (frozen, or gone without FIN).

The client opens a book stream, lets the server fill its window, then never reads
again. Its stream would otherwise hold a slot (and the server's pending message)
for ever. With PINGs after 0.5 s of silence and 0.5 s to answer, it is closed
within about a second, while a well-behaved client in another thread keeps going.
"""

from __future__ import annotations

from .conftest import TEST_LIMITS
from .helpers import RawH2, ServerProcess, watching

LIMITS = {**TEST_LIMITS, "keepalive_interval": 0.5, "keepalive_timeout": 0.5}


async def test_a_client_that_stops_reading_is_found_and_closed() -> None:
    with ServerProcess(LIMITS) as server:
        async with watching(server.target) as watcher:
            baseline = server.fds()
            client = await RawH2.connect(server.port)
            client.request()
            await client.flush()
            await client.pump(0.3)  # some Summaries arrive; then this client freezes
            await server.wait_for(lambda r: r["keepalive_timeouts"] == 1, within=5)
            # The counter moves before the connection's streams are torn down, so the
            # stream count is awaited too: only the watcher's stream remains.
            await server.wait_for(lambda r: r["open_streams"] == 1, within=2)
            client.close()
            await server.wait_for(lambda r: r["open_connections"] == 1)
            await watcher.wait_more()
            assert server.fds() <= baseline
            # The watcher reads (grpcio answers PINGs), so it was never cut.
            assert watcher.status is None
