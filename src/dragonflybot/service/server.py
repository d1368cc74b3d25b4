"""The gRPC server: a listener on exactly the configured address, ``Connection`` behind it.

purerpc's ``Server.serve_async`` is not used: it takes no host, binds every
interface with ``SO_REUSEPORT`` (so a second server on the same port silently
shares the traffic instead of failing) and cannot shut down gracefully. Here the
listener binds only ``host:port`` without ``SO_REUSEPORT``, a taken port is a
``ServiceError``, and ``shutdown()`` ends every stream with a status before the
sockets close.

The accept loop never ends the process: running out of file descriptors
(EMFILE/ENFILE, or ENOBUFS/ENOMEM) is waited out as trio's ``serve_listeners``
does, 100 ms at a time, logged once per burst. anyio reports some of these as
``BrokenResourceError`` with the ``OSError`` as its cause, so both are caught.
Past ``max_connections`` a new connection gets SETTINGS and GOAWAY
(ENHANCE_YOUR_CALM) and is closed at once, without a task (over TLS, where those
bytes would be garbage before a handshake, it is only closed).

TLS and token checks (``security``) are per connection and per call; the
handshake runs in the connection's task, bounded by ``handshake_timeout``, so a
client that connects and sends nothing costs a slot for that long at most.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any, Final

import anyio
import anyio.abc
import trio
from anyio.streams.stapled import MultiListener

from dragonflybot.config import LimitsConfig, format_listen
from dragonflybot.errors import ServiceError
from dragonflybot.service.connection import Connection
from dragonflybot.service.purerpc_adapter import Methods, method_table
from dragonflybot.service.security import TokenCheck
from dragonflybot.service.stats import LogThrottle, ServerStats

log = logging.getLogger(__name__)

ACCEPT_RETRY: Final = 0.1
"""Seconds to wait after a failed ``accept`` (trio's ``serve_listeners`` waits the same)."""

REFUSAL: Final = (
    # An empty SETTINGS frame (the server preface), then GOAWAY(last stream 0,
    # ENHANCE_YOUR_CALM, "too many connections"): a client sees why and backs off.
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    + (8 + 20).to_bytes(3, "big")
    + b"\x07\x00\x00\x00\x00\x00"
    + (0).to_bytes(4, "big")
    + (0xB).to_bytes(4, "big")
    + b"too many connections"
)


def methods_of(servicers: Iterable[Any]) -> Methods:
    """``(service, method) -> MethodEntry`` for purerpc servicers (generated classes)."""
    return method_table(servicers)


class GrpcServer:
    """Serves purerpc servicers on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(
        self,
        servicers: Iterable[Any],
        host: str,
        port: int,
        *,
        limits: LimitsConfig | None = None,
        stats: ServerStats | None = None,
        tls: ssl.SSLContext | None = None,
        auth: TokenCheck | None = None,
    ) -> None:
        """``tls``: serve over TLS (``security.server_tls_context``); ``auth``: require
        the bearer token on every call but the open ones (``security.TokenCheck``)."""
        self._methods = methods_of(servicers)
        self.tls = tls
        self.auth = auth
        self.host = host
        self.port = port
        self.limits = limits if limits is not None else LimitsConfig()
        self.stats = stats if stats is not None else ServerStats()
        self._connections: set[Connection] = set()
        self._accept_scope = trio.CancelScope()
        self._done = trio.Event()
        self._closing = False
        self._refusing = False
        self._throttle = LogThrottle()
        self.wrap_accepted: Callable[[anyio.abc.SocketStream], anyio.abc.SocketStream] | None = None
        """Wraps each accepted socket before its ``Connection`` sees it (set before clients
        connect): the latency benchmark stamps the bytes written to each client there, once
        per connection, instead of a branch on the send path."""

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
        failing = False
        while True:
            try:
                stream = await listener.accept()
            except (OSError, anyio.BrokenResourceError) as exc:
                self.stats.accept_errors += 1
                if not failing:
                    failing = True
                    log.warning(
                        "accept failed on %s (%s); retrying every %.1f s",
                        self.address,
                        _reason(exc),
                        ACCEPT_RETRY,
                    )
                await trio.sleep(ACCEPT_RETRY)
                continue
            if failing:
                failing = False
                log.warning("accepting again on %s", self.address)
            if len(self._connections) >= self.limits.max_connections:
                await self._refuse(stream)
                continue
            self._refusing = False
            self.stats.connections_accepted += 1
            if self.wrap_accepted is not None:
                stream = self.wrap_accepted(stream)
            connection = Connection(
                self._methods,
                stream,
                self.limits,
                self.stats,
                self._throttle,
                tls=self.tls,
                auth=self.auth,
            )
            self._connections.add(connection)
            nursery.start_soon(self._serve_connection, connection)

    async def _refuse(self, stream: anyio.abc.SocketStream) -> None:
        """Over the cap: say so in one non-blocking write and close, without a task."""
        self.stats.connections_refused += 1
        if not self._refusing:
            self._refusing = True
            log.warning(
                "%s: %d connections open (the limit); refusing new ones",
                self.address,
                len(self._connections),
            )
        if self.tls is None:
            with contextlib.suppress(OSError):  # peer gone or buffer full: the close says enough
                stream.extra(anyio.abc.SocketAttribute.raw_socket).send(REFUSAL)
        with trio.CancelScope(shield=True):
            await stream.aclose()

    async def _serve_connection(self, connection: Connection) -> None:
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


def _reason(exc: BaseException) -> str:
    """The ``OSError`` behind an accept failure (anyio may wrap it), as words."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.errno is not None:
        name = errno.errorcode.get(cause.errno, str(cause.errno))
        return f"{name}: {cause.strerror}"
    return repr(exc)
