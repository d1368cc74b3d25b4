"""``grpc.health.v1.Health``: SERVING while at least one venue's book is live.

Load balancers and orchestrators ask this instead of guessing from the stream:
a server whose every venue is down still streams (empty books) but reports
NOT_SERVING. Both the whole server (``""``) and the book service are known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.service.book_summary import SERVICE_NAME
from dragonflybot.service.messages import (
    NOT_SERVING,
    SERVICE_UNKNOWN,
    SERVING,
    HealthCheckResponse,
)
from dragonflybot.service.proto.health_grpc import HealthServicer
from dragonflybot.service.purerpc_adapter import RpcFailedError, Status, StatusCode

KNOWN_SERVICES = frozenset({"", SERVICE_NAME})


class HealthService(HealthServicer):
    """Answers from ``serving``: a fan-out of "is any venue live?", published on change."""

    def __init__(self, serving: Fanout[bool]) -> None:
        self._serving = serving

    def status(self) -> int:
        return SERVING if self._serving.latest() else NOT_SERVING

    async def Check(self, input_message: Any) -> Any:
        if input_message.service not in KNOWN_SERVICES:
            raise RpcFailedError(Status(StatusCode.NOT_FOUND, "unknown service"))
        return HealthCheckResponse(status=self.status())

    async def Watch(self, input_message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        if input_message.service not in KNOWN_SERVICES:
            # The protocol: say SERVICE_UNKNOWN and keep the call open.
            yield HealthCheckResponse(status=SERVICE_UNKNOWN)
            await trio.sleep_forever()
        last: int | None = None
        with self._serving.subscribe() as subscription:
            if self._serving.latest() is None:
                last = NOT_SERVING
                yield HealthCheckResponse(status=last)
            async for serving in subscription:
                status = SERVING if serving else NOT_SERVING
                if status != last:
                    last = status
                    yield HealthCheckResponse(status=status)
        if last != NOT_SERVING:
            yield HealthCheckResponse(status=NOT_SERVING)
        raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "the book is no longer published"))
