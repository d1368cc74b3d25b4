"""``grpc.health.v1.Health``: SERVING while at least one venue's book is live.

Load balancers and orchestrators ask this instead of guessing from the stream:
a server whose every venue is down still streams (empty books) but reports
NOT_SERVING. The whole server (``""``) and each service it runs are known by
name, each answered from its own "is a venue live?" fan-out: on the app's
servers, the Keyrock ``BookSummary`` from its default instrument, the
``dragonflybot.v1`` services and ``""`` from any instrument of the process
(``any_serving``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
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
"""What a server built with only ``serving`` knows: itself and the Keyrock service."""


class HealthService(HealthServicer):
    """Answers from fan-outs of "is a venue live?", each published on change.

    ``serving`` answers for the whole server (``""``); ``services`` maps each other
    service name to its own fan-out (default: the Keyrock service on ``serving``).
    """

    def __init__(
        self, serving: Fanout[bool], *, services: Mapping[str, Fanout[bool]] | None = None
    ) -> None:
        self._services: dict[str, Fanout[bool]] = {"": serving}
        self._services.update(services if services is not None else {SERVICE_NAME: serving})

    @property
    def known(self) -> frozenset[str]:
        return frozenset(self._services)

    def status(self, service: str = "") -> int:
        return SERVING if self._services[service].latest() else NOT_SERVING

    async def Check(self, input_message: Any) -> Any:
        if input_message.service not in self._services:
            raise RpcFailedError(Status(StatusCode.NOT_FOUND, "unknown service"))
        return HealthCheckResponse(status=self.status(input_message.service))

    async def Watch(self, input_message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        fanout = self._services.get(input_message.service)
        if fanout is None:
            # The protocol: say SERVICE_UNKNOWN and keep the call open.
            yield HealthCheckResponse(status=SERVICE_UNKNOWN)
            await trio.sleep_forever()
            return
        last: int | None = None
        with fanout.subscribe() as subscription:
            if fanout.latest() is None:
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


async def any_serving(sources: Sequence[Fanout[bool]], out: Fanout[bool]) -> None:
    """Publish to ``out`` whether any of ``sources`` is serving, on each change.

    Runs until every source is closed (the aggregators ended), then closes ``out``.
    One task per source, each reading its own conflating subscription.
    """
    latest: list[bool] = [False] * len(sources)

    async def follow(i: int, source: Fanout[bool]) -> None:
        with source.subscribe() as subscription:
            async for serving in subscription:
                latest[i] = serving
                if out.latest() is not any(latest):
                    out.publish(any(latest))

    try:
        async with trio.open_nursery() as nursery:
            for i, source in enumerate(sources):
                nursery.start_soon(follow, i, source)
    finally:
        out.close()
