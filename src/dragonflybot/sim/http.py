"""A small HTTP/1.1 server for the simulated venues' REST snapshots, on h11.

Each request goes to a synchronous handler, which is all REST snapshot endpoints need;
the connection loop (h11 framing, keep-alive, idle timeouts) is ``dragonflybot.httpserver``.
This module keeps the venue-facing shape: JSON responses, and a handler bug answered
with a 500 instead of a dropped connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import attrs
import msgspec
import trio

from dragonflybot.httpserver import Headers, Response, serve_listeners

log = logging.getLogger(__name__)

_MAX_REQUEST: Final = 64 * 1024
_SERVER: Final = b"dragonflybot-sim"


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, value: object) -> HttpResponse:
        return cls(status, msgspec.json.encode(value))


RestHandler = Callable[[str, str], HttpResponse]
"""(method, request target) -> response."""


async def serve_http(
    handler: RestHandler,
    host: str,
    port: int,
    *,
    idle_timeout: float = 30.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)

    def respond(method: str, target: str, headers: Headers) -> Response:
        try:
            response = handler(method, target)
        except Exception:
            log.exception("REST handler failed for %s %s", method, target)
            response = HttpResponse.json(500, {"error": "internal error"})
        content_type = [(b"content-type", response.content_type.encode())]
        return Response(response.status, content_type, response.body)

    await serve_listeners(
        respond,
        listeners,
        server=_SERVER,
        max_request=_MAX_REQUEST,
        idle_timeout=idle_timeout,
        error_headers=[(b"content-type", b"application/json")],
        task_status=task_status,
    )
