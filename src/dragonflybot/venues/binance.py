"""Binance spot: combined-stream WebSocket, partial-depth and diff-depth books.

Wire schema here is shared by the feed and the simulator, so both sides of every
test speak exactly one definition of the protocol.
"""

from __future__ import annotations

import msgspec

NAME = "binance"
DEFAULT_WS_URL = "wss://stream.binance.com:9443/stream"
DEFAULT_REST_URL = "https://api.binance.com"

RawLevels = list[tuple[str, str]]


class PartialDepth(msgspec.Struct):
    """``<sym>@depth<N>@100ms`` payload: a whole top-N book (no symbol, no event time)."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class DepthUpdate(msgspec.Struct):
    """``<sym>@depth@100ms`` payload: absolute quantities for changed levels."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: RawLevels
    a: RawLevels


class DepthSnapshot(msgspec.Struct):
    """REST ``GET /api/v3/depth`` body."""

    lastUpdateId: int
    bids: RawLevels
    asks: RawLevels


class SubscribeRequest(msgspec.Struct):
    method: str
    params: list[str]
    id: int


class CommandResult(msgspec.Struct):
    """Reply to SUBSCRIBE etc.: ``{"result": null, "id": N}``."""

    id: int | str | None
    result: object = None


class CommandError(msgspec.Struct):
    """Error reply: ``{"code": n, "msg": "...", "id": N}``."""

    code: int
    msg: str
    id: int | str | None = None
