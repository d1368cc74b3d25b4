"""What a grpcio client sees at ``max_streams_per_connection`` (docs/security.md).

The limit is advertised in SETTINGS_MAX_CONCURRENT_STREAMS, so grpcio queues further
calls on its side instead of opening streams the server would refuse: the call over
the limit waits (and fails only by its own deadline), nothing is refused, and it runs
as soon as a stream ends.
"""

from __future__ import annotations

from typing import Any

import grpc
import trio

from dragonflybot.config import LimitsConfig
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher
from dragonflybot.service.messages import HealthCheckRequest, HealthCheckResponse

from .conftest import grpcio_stream, wait_for


async def test_grpcio_queues_calls_over_the_stream_limit() -> None:
    publisher = SummaryPublisher()  # no book: the streams wait for one
    server = GrpcServer(
        [BookSummaryService(publisher.books), HealthService(publisher.serving)],
        "127.0.0.1",
        0,
        limits=LimitsConfig(max_streams_per_connection=2),
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=HealthCheckResponse.FromString,
        )

        def health(timeout: float) -> Any:
            try:
                return check(HealthCheckRequest(), timeout=timeout).status
            except grpc.RpcError as exc:
                return exc.code()

        streams = [grpcio_stream(channel), grpcio_stream(channel)]
        await wait_for(lambda: sum(c.stream_count for c in server.connections()) == 2)
        assert await trio.to_thread.run_sync(health, 0.5) == grpc.StatusCode.DEADLINE_EXCEEDED
        assert server.stats.streams_refused == 0
        streams[0].cancel()
        assert await trio.to_thread.run_sync(health, 10) == HealthCheckResponse.NOT_SERVING
        streams[1].cancel()
        channel.close()
        server.shutdown()
