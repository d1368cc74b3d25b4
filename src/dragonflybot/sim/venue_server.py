"""The trio side of a simulated venue: WebSocket + REST listeners and client connections.

``VenueServer`` holds what every simulated venue shares (handshakes, connections, faults,
counters); ``model_server.ModelVenueServer`` publishes the market model,
``replay.ReplayVenueServer`` plays back a capture. Venue specifics live in the sans-I/O
``*_venue`` modules.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Awaitable, Callable

import trio

from dragonflybot.config import format_listen
from dragonflybot.errors import ConfigError
from dragonflybot.sim.config import Endpoints, SimConfig
from dragonflybot.sim.connection import ClientConnection
from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import Outgoing
from dragonflybot.sim.http import HttpResponse, serve_http
from dragonflybot.sim.protocol import Key, Rejection, VenueProtocol
from dragonflybot.sim.transport import ConnectionHandler, PendingRequest, serve_trio_websocket
from dragonflybot.sim.ws_lean import serve_wsproto

log = logging.getLogger(__name__)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class VenueServer(abc.ABC):
    """One simulated venue: listeners, client connections, faults and counters."""

    def __init__(
        self, venue: str, protocol: VenueProtocol, ws_path: str, config: SimConfig
    ) -> None:
        self.venue = venue
        self._protocol = protocol
        self._ws_path = ws_path
        self.config = config
        self._faults = config.faults_for(venue)
        self.frames_sent = 0
        """Messages written to clients (data, control, garbage and notices)."""
        self.connections: set[ClientConnection] = set()
        self._next_index = 0
        self._clock_origin = 0.0
        self._epoch_ns = 0

    # --- ConnectionHost -------------------------------------------------------------------

    @property
    def protocol(self) -> VenueProtocol:
        return self._protocol

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        self._faults = faults

    @property
    def stamp_send_time(self) -> bool:
        return self.config.stamp_send_time

    def time_ms(self) -> int:
        elapsed = trio.current_time() - self._clock_origin
        return (self._epoch_ns + round(elapsed * 1e9)) // 1_000_000

    @abc.abstractmethod
    def subscribe(self, conn: ClientConnection, key: Key) -> None: ...

    @abc.abstractmethod
    def unsubscribe(self, conn: ClientConnection, key: Key) -> None: ...

    def written(self, frames: list[Outgoing], messages: int) -> None:
        self.frames_sent += messages

    # --- serving --------------------------------------------------------------------------

    @abc.abstractmethod
    def rest(self, method: str, target: str) -> HttpResponse:
        """Answer a REST request."""

    async def background(self, nursery: trio.Nursery) -> None:
        """Start the venue's own tasks once the listeners are bound."""
        await trio.lowlevel.checkpoint()

    def connection_opened(self, conn: ClientConnection, nursery: trio.Nursery) -> None:
        """Hook: a client connection started (its tasks run in ``nursery``)."""
        log.debug("%s: client %d connected", self.venue, conn.index)

    async def _listen(
        self,
        nursery: trio.Nursery,
        what: str,
        serve: Callable[..., Awaitable[None]],
        handler: object,
        port: int,
    ) -> int:
        """Start one listener; a bind failure names the venue, the listener and the address."""
        host = self.config.host
        try:
            bound: int = await nursery.start(serve, handler, host, port)
        except OSError as exc:
            where = format_listen(host, port)
            raise ConfigError(f"{self.venue} {what}: cannot listen on {where}: {exc}") from exc
        return bound

    async def serve(
        self, *, task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind the WebSocket and REST listeners, report the endpoints, serve until cancelled."""
        config = self.config
        serve_ws: Callable[..., Awaitable[None]] = (
            serve_wsproto if config.ws_backend == "wsproto" else serve_trio_websocket
        )
        handler: ConnectionHandler = self._on_request
        async with trio.open_nursery() as nursery:
            ws_port = await self._listen(
                nursery, "WebSocket", serve_ws, handler, config.ports.get(self.venue, 0)
            )
            rest_port = await self._listen(
                nursery, "REST", serve_http, self.rest, config.rest_ports.get(self.venue, 0)
            )
            self._clock_origin = trio.current_time()
            self._epoch_ns = self._start_epoch_ns()
            await self.background(nursery)
            host = _url_host(config.host)
            task_status.started(
                Endpoints(
                    ws_url=f"ws://{host}:{ws_port}{self._ws_path}",
                    rest_url=f"http://{host}:{rest_port}",
                )
            )

    def _start_epoch_ns(self) -> int:
        return self.config.epoch_ns if self.config.epoch_ns is not None else time.time_ns()

    async def _on_request(self, request: PendingRequest) -> None:
        opened = self._protocol.open(request.target)
        if isinstance(opened, Rejection):
            await request.reject(opened.status, opened.body)
            return
        session, keys = opened
        if keys and self._faults.reject_subscriptions:
            await request.reject(400, "Invalid request: subscription refused")
            return
        socket = await request.accept()
        self._next_index += 1
        conn = ClientConnection(
            self,
            socket,
            session,
            index=self._next_index,
            seed=self.config.seed,
            max_pending=self.config.max_pending,
        )
        self.connections.add(conn)
        try:
            conn.subscribe(keys)
            async with trio.open_nursery() as nursery:
                conn_nursery = await nursery.start(conn.run)
                self.connection_opened(conn, conn_nursery)
        finally:
            self.connections.discard(conn)

    async def flushed(self) -> None:
        """Until every frame queued so far has been written to its client."""
        for conn in list(self.connections):
            await conn.outbox.wait_idle()
