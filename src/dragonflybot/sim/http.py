"""A small HTTP/1.1 server for the simulated venues' REST snapshots, on h11.

h11 does all the parsing and framing (keep-alive, pipelining, chunked bodies, malformed
requests); this module only moves bytes and routes each request to a synchronous handler,
which is all REST snapshot endpoints need. Every read waits under the idle timeout, so an
idle or half-open client cannot hold a task forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import attrs
import h11
import msgspec
import trio

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

    async def connection(stream: trio.SocketStream) -> None:
        await _serve_connection(stream, handler, idle_timeout)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def _serve_connection(stream: trio.SocketStream, handler: RestHandler, idle: float) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
    async with stream:
        try:
            while True:
                with trio.move_on_after(idle):
                    event = await _next_event(conn, stream)
                    if isinstance(event, h11.Request):
                        await _respond(conn, stream, event, handler)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send(conn, stream, HttpResponse(exc.error_status_hint, b""), head=False)
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
    conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, handler: RestHandler
) -> None:
    while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | h11.ConnectionClosed):
        pass  # a snapshot request has no body worth reading
    method = request.method.decode("ascii", "replace")
    target = request.target.decode("ascii", "replace")
    try:
        response = handler(method, target)
    except Exception:
        log.exception("REST handler failed for %s %s", method, target)
        response = HttpResponse.json(500, {"error": "internal error"})
    await _send(conn, stream, response, head=method == "HEAD")


async def _send(
    conn: h11.Connection, stream: trio.SocketStream, response: HttpResponse, *, head: bool
) -> None:
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
        (b"server", _SERVER),
    ]
    data = conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
    if not head:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
