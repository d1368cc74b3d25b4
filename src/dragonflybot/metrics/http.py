"""The ``/metrics`` endpoint: Prometheus exposition over HTTP/1.1, on h11 and trio.

``prometheus_client.start_http_server`` would start a thread and serve the global
registry; here the server is one more task in the app's nursery, serving that
app's own registry. The connection loop (h11 framing, idle timeouts) lives in
``dragonflybot.httpserver``; this module binds, routes and encodes.
"""

from __future__ import annotations

import errno
import logging
from typing import Final

import trio
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from dragonflybot.config import format_listen
from dragonflybot.errors import ServiceError
from dragonflybot.httpserver import Headers, Response, serve_listeners

log = logging.getLogger(__name__)

METRICS_PATH: Final = "/metrics"
_MAX_REQUEST: Final = 16 * 1024
_SERVER: Final = b"dragonflybot"


async def serve_metrics(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    idle_timeout: float = 30.0,
    max_connections: int = 16,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` until cancelled.

    Start it with ``nursery.start``: it reports the bound port (the one picked
    for port 0) once listening. An address that cannot be bound is a
    ``ServiceError`` naming it. A scraper needs one connection: ``max_connections``
    leaves room for a few and keeps idle floods from taking the process's descriptors.
    """
    listeners = await _bind(host, port)
    bound = listeners[0].socket.getsockname()[1]

    def handler(method: str, target: str, headers: Headers) -> Response:
        return _respond(registry, method, target, headers)

    log.info(
        "metrics on http://%s%s",
        format_listen(host, bound),
        METRICS_PATH,
        extra={"metrics_port": bound},
    )
    await serve_listeners(
        handler,
        listeners,
        server=_SERVER,
        max_request=_MAX_REQUEST,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        task_status=task_status,
    )


async def _bind(host: str, port: int) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = format_listen(host, port)
        if exc.errno == errno.EADDRINUSE:
            raise ServiceError(f"cannot serve metrics on {where}: address already in use") from exc
        reason = exc.strerror or str(exc)
        raise ServiceError(f"cannot serve metrics on {where}: {reason}") from exc


def _respond(registry: CollectorRegistry, method: str, target: str, headers: Headers) -> Response:
    if method not in ("GET", "HEAD"):
        allow = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")]
        return Response(405, allow, b"method not allowed\n")
    if target.partition("?")[0] != METRICS_PATH:
        body = f"not found: metrics are at {METRICS_PATH}\n".encode()
        return Response(404, [(b"content-type", b"text/plain")], body)
    accept = ",".join(v.decode("latin-1") for k, v in headers if k == b"accept")
    encode, content_type = choose_encoder(accept)
    return Response(200, [(b"content-type", content_type.encode())], encode(registry))
