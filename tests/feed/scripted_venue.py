"""A local WebSocket venue on 127.0.0.1 whose every frame is written by the test.

Each accepted connection is handed to the test as a ``Conn``; the test reads what
the feed sent and answers (acks, book frames, garbage, closes) in exactly the
order the scenario needs. REST snapshots come from ``RestBook`` through
``httpx.MockTransport``. Small on purpose: the full simulated venues live in
``dragonflybot.sim``; these tests must stand alone and control every byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from dragonflybot.client import RestClient

WAIT = 30.0
"""Guard against a hung test (virtual seconds under the autojump clock)."""


@attrs.define
class Conn:
    """The server end of one feed connection."""

    ws: trio_websocket.WebSocketConnection
    done: trio.Event = attrs.field(factory=trio.Event)

    async def recv_json(self) -> Any:
        with trio.fail_after(WAIT):
            return json.loads(await self.ws.get_message())

    async def send(self, value: Any) -> None:
        await self.ws.send_message(value if isinstance(value, str) else json.dumps(value))

    async def close(self) -> None:
        await self.ws.aclose()
        self.done.set()

    # --- per-venue handshakes -----------------------------------------------------------

    async def binance_subscribe(self, *, reply: Any = None) -> list[str]:
        """Read the SUBSCRIBE and acknowledge it (or send ``reply`` instead)."""
        request = await self.recv_json()
        assert request["method"] == "SUBSCRIBE", request
        await self.send(reply if reply is not None else {"result": None, "id": request["id"]})
        params: list[str] = request["params"]
        return params

    async def bitstamp_subscribe(self, *, reply: Any = None) -> str:
        request = await self.recv_json()
        while request["event"] == "bts:heartbeat":
            request = await self.recv_json()
        assert request["event"] == "bts:subscribe", request
        channel: str = request["data"]["channel"]
        ack = {"event": "bts:subscription_succeeded", "channel": channel, "data": {}}
        await self.send(reply if reply is not None else ack)
        return channel


@attrs.define
class ScriptedVenue:
    """The listening server; ``next_conn()`` yields each new connection."""

    port: int = 0
    connections: int = 0
    _send: trio.MemorySendChannel[Conn] | None = None
    _recv: trio.MemoryReceiveChannel[Conn] | None = None

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def next_conn(self) -> Conn:
        assert self._recv is not None
        with trio.fail_after(WAIT):
            return await self._recv.receive()

    async def _handle(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        self.connections += 1
        conn = Conn(ws)
        assert self._send is not None
        await self._send.send(conn)
        await conn.done.wait()


async def start_venue(nursery: trio.Nursery, port: int = 0) -> ScriptedVenue:
    venue = ScriptedVenue()
    venue._send, venue._recv = trio.open_memory_channel[Conn](16)
    server = await nursery.start(
        trio_websocket.serve_websocket, venue._handle, "127.0.0.1", port, None
    )
    venue.port = server.port
    return venue


@attrs.define
class RestBook:
    """REST answers served from a function of the request (set per test)."""

    answer: Callable[[httpx.Request], httpx.Response]
    requests: list[httpx.Request] = attrs.field(factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self) -> RestClient:
        return RestClient(transport=httpx.MockTransport(self.handler), max_retries=0)


def json_response(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode())
