"""The gRPC server: a listener on exactly the configured address, our dispatch behind it.

purerpc's ``Server.serve_async`` is not used: it takes no host, binds every
interface with ``SO_REUSEPORT`` (so a second server on the same port silently
shares the traffic instead of failing) and cannot shut down gracefully. Here the
listener binds only ``host:port`` without ``SO_REUSEPORT``, a taken port is a
``ServiceError``, and ``shutdown()`` ends every stream with a status before the
sockets close.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.abc
import trio
from anyio.streams.stapled import MultiListener

from dragonflybot.config import format_listen
from dragonflybot.errors import ServiceError
from dragonflybot.service.connection import Connection, Methods

log = logging.getLogger(__name__)


def methods_of(servicers: Iterable[Any]) -> Methods:
    """``(service, method) -> bound method`` for purerpc servicers (generated classes)."""
    table: dict[tuple[str, str], Any] = {}
    for servicer in servicers:
        service = servicer.service
        for name, bound in service.methods.items():
            table[(service.name, name)] = bound
    return table


class GrpcServer:
    """Serves purerpc servicers on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(self, servicers: Iterable[Any], host: str, port: int) -> None:
        self._methods = methods_of(servicers)
        self.host = host
        self.port = port
        self._connections: set[Connection] = set()
        self._accept_scope = trio.CancelScope()
        self._done = trio.Event()
        self._closing = False

    @property
    def address(self) -> str:
        return format_listen(self.host, self.port)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections(self) -> tuple[Connection, ...]:
        """The open client connections (for metrics and tests)."""
        return tuple(self._connections)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report the bound port through ``task_status``, serve until shut down.

        Returns once ``shutdown`` was called and every connection has closed; cancel
        the caller's scope to cut a slow shutdown short.
        """
        listener = await self._bind()
        self.port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        log.info("gRPC server listening on %s", self.address)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(self.port)
                with self._accept_scope:
                    async with anyio.create_task_group() as accepts:
                        for sub in listener.listeners:
                            accepts.start_soon(self._accept_loop, sub, nursery)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            self._done.set()

    async def _bind(self) -> MultiListener[anyio.abc.SocketStream]:
        try:
            return await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        except OSError as exc:
            where = format_listen(self.host, self.port)
            if exc.errno == errno.EADDRINUSE:
                raise ServiceError(f"cannot listen on {where}: address already in use") from exc
            reason = exc.strerror or str(exc)
            raise ServiceError(f"cannot listen on {where}: {reason}") from exc

    async def _accept_loop(self, listener: Any, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # EMFILE and friends: keep the server up, retry after a breath.
                log.warning("accept failed on %s: %s", self.address, exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._serve_connection, Connection(self._methods, stream))

    async def _serve_connection(self, connection: Connection) -> None:
        self._connections.add(connection)
        try:
            if self._closing:
                connection.shutdown()
            await connection.serve()
        finally:
            self._connections.discard(connection)

    def shutdown(self) -> None:
        """Stop accepting; end each stream with UNAVAILABLE, send GOAWAY, close (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._accept_scope.cancel()
        for connection in list(self._connections):
            connection.shutdown()

    async def wait_closed(self) -> None:
        """Wait until ``serve`` has returned."""
        await self._done.wait()
