"""The HTTP/1.1 connection loop shared by the app's small servers, on h11 and trio.

The Prometheus endpoint and the simulator's REST snapshots need the same thing: answer
tiny GET/HEAD requests from an in-memory handler. h11 does the parsing and framing
(keep-alive, pipelining, chunked bodies, malformed requests); this module only moves
bytes between it and the socket, and each server keeps just its routing. Every client
wait runs under the idle timeout, so a stalled or half-open client cannot hold a task.

Hostile clients: trio's ``serve_listeners`` already waits out EMFILE/ENFILE (100 ms
at a time) instead of failing, and ``max_connections`` caps what idle clients can
hold: a connection past it is closed at once, so a flood of idle ``/metrics``
connections cannot use up the descriptors the gRPC server and the feeds need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import h11
import trio

Headers = Sequence[tuple[bytes, bytes]]


class Response(NamedTuple):
    status: int
    headers: Headers
    """Sent before the ``content-length`` and ``server`` headers this module adds."""
    body: bytes


Handler = Callable[[str, str, Headers], Response]
"""(method, request target, request headers) -> response; HEAD gets the body dropped."""


async def serve_listeners(
    handler: Handler,
    listeners: list[trio.SocketListener],
    *,
    server: bytes,
    max_request: int,
    idle_timeout: float,
    error_headers: Headers = (),
    max_connections: int = 64,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` on already bound ``listeners`` until cancelled; reports the port.

    Binding stays with the caller so that each server can say in its own terms
    why an address cannot be used. At most ``max_connections`` are served at once;
    one more is closed as soon as it is accepted. ``error_headers`` go with the empty response
    to a request h11 cannot parse.
    """
    config = _Config(handler, server, max_request, idle_timeout, error_headers)
    open_count = 0

    async def connection(stream: trio.SocketStream) -> None:
        nonlocal open_count
        if open_count >= max_connections:
            await stream.aclose()
            return
        open_count += 1
        try:
            await _serve_connection(stream, config)
        finally:
            open_count -= 1

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


class _Config(NamedTuple):
    handler: Handler
    server: bytes
    max_request: int
    idle: float
    error_headers: Headers


async def _serve_connection(stream: trio.SocketStream, config: _Config) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_request)
    async with stream:
        try:
            while True:
                with trio.move_on_after(config.idle):
                    event = await _next_event(conn, stream)
                    if isinstance(event, h11.Request):
                        await _respond(conn, stream, event, config)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                error = Response(exc.error_status_hint, config.error_headers, b"")
                with trio.move_on_after(config.idle):
                    await _send(conn, stream, error, config.server, head=False)
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
    conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, config: _Config
) -> None:
    while not isinstance(await _next_event(conn, stream), h11.EndOfMessage | h11.ConnectionClosed):
        pass  # these servers take no request bodies worth reading
    method = request.method.decode("ascii", "replace")
    target = request.target.decode("ascii", "replace")
    response = config.handler(method, target, request.headers)
    await _send(conn, stream, response, config.server, head=method == "HEAD")


async def _send(
    conn: h11.Connection,
    stream: trio.SocketStream,
    response: Response,
    server: bytes,
    *,
    head: bool,
) -> None:
    headers = [
        *response.headers,
        (b"content-length", str(len(response.body)).encode()),
        (b"server", server),
    ]
    data = conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
    if not head:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)
