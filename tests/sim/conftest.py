"""Helpers for talking to simulated venues over real sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio_websocket

from dragonflybot.sim import SimConfig, SimHandle, serve_simulation
from dragonflybot.sim.config import WsBackend

EPOCH = 1_700_000_000_000_000_000
WAIT = 10.0
"""Deadline for any single network wait in these tests (never reached when all is well)."""


@pytest.fixture(params=["trio-websocket", "wsproto"])
def ws_backend(request: pytest.FixtureRequest) -> WsBackend:
    value: WsBackend = request.param
    return value


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[SimHandle]:
    """A simulation with a fixed epoch (so timestamps are reproducible), cancelled on exit."""
    overrides.setdefault("epoch_ns", EPOCH)
    async with trio.open_nursery() as nursery:
        handle: SimHandle = await nursery.start(serve_simulation, SimConfig(**overrides))
        yield handle
        nursery.cancel_scope.cancel()


async def receive(ws: trio_websocket.WebSocketConnection) -> str:
    with trio.fail_after(WAIT):
        message = await ws.get_message()
    assert isinstance(message, str)
    return message


async def receive_n(ws: trio_websocket.WebSocketConnection, n: int) -> list[str]:
    return [await receive(ws) for _ in range(n)]


async def send_json(ws: trio_websocket.WebSocketConnection, value: object) -> None:
    await ws.send_message(msgspec.json.encode(value).decode())


async def closed(ws: trio_websocket.WebSocketConnection) -> list[str]:
    """Read until the server closes the connection; the messages read meanwhile."""
    got: list[str] = []
    with trio.fail_after(WAIT):
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return got
            assert isinstance(message, str)
            got.append(message)
