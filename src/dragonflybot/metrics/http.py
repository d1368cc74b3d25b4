"""The ``/metrics`` endpoint: Prometheus exposition over HTTP/1.1, on h11 and trio.

``prometheus_client.start_http_server`` would start a thread and serve the global
registry; here the server is one more task in the app's nursery, serving that
app's own registry. h11 does the parsing and framing (keep-alive, pipelining,
malformed requests); this module routes and moves bytes. Every client wait is
bounded by the idle timeout, so a scraper that stalls cannot hold a task.
"""

from __future__ import annotations

import errno
import logging
from typing import Final

import h11
import trio
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from dragonflybot.config import format_listen
from dragonflybot.errors import ServiceError

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
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` until cancelled.

    Start it with ``nursery.start``: it reports the bound port (the one picked
    for port 0) once listening. An address that cannot be bound is a
    ``ServiceError`` naming it.
    """
    listeners = await _bind(host, port)
    bound = listeners[0].socket.getsockname()[1]

    async def connection(stream: trio.SocketStream) -> None:
        await _serve_connection(stream, registry, idle_timeout)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        log.info(
            "metrics on http://%s%s",
            format_listen(host, bound),
            METRICS_PATH,
            extra={"metrics_port": bound},
        )
        task_status.started(bound)


async def _bind(host: str, port: int) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = format_listen(host, port)
        if exc.errno == errno.EADDRINUSE:
            raise ServiceError(f"cannot serve metrics on {where}: address already in use") from exc
        reason = exc.strerror or str(exc)
        raise ServiceError(f"cannot serve metrics on {where}: {reason}") from exc


async def _serve_connection(
    stream: trio.SocketStream, registry: CollectorRegistry, idle: float
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
    async with stream:
        try:
            while True:
                with trio.move_on_after(idle):
                    event = await _next_event(conn, stream)
                    if isinstance(event, h11.Request):
                        await _respond(conn, stream, event, registry)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with trio.move_on_after(idle):
                    await _send(conn, stream, exc.error_status_hint, [], b"", head=False)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        return event


async def _respond(
    conn: h11.Connection,
    stream: trio.SocketStream,
    request: h11.Request,
    registry: CollectorRegistry,
) -> None:
    while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | h11.ConnectionClosed):
        pass  # a scrape has no body worth reading
    method = request.method.decode("ascii", "replace")
    path = request.target.decode("ascii", "replace").partition("?")[0]
    head = method == "HEAD"
    if method not in ("GET", "HEAD"):
        headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")]
        await _send(conn, stream, 405, headers, b"method not allowed\n", head=head)
        return
    if path != METRICS_PATH:
        body = f"not found: metrics are at {METRICS_PATH}\n".encode()
        await _send(conn, stream, 404, [(b"content-type", b"text/plain")], body, head=head)
        return
    accept = ",".join(v.decode("latin-1") for k, v in request.headers if k == b"accept")
    encode, content_type = choose_encoder(accept)
    body = encode(registry)
    await _send(conn, stream, 200, [(b"content-type", content_type.encode())], body, head=head)


async def _send(
    conn: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    head: bool,
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"server", _SERVER)]
    data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    if not head:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
