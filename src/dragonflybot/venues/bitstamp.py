"""Bitstamp: ``bts:subscribe`` channels, top-100 snapshots and full-depth diffs.

Wire schema here is shared by the feed and the simulator.
"""

from __future__ import annotations

import msgspec

NAME = "bitstamp"
DEFAULT_WS_URL = "wss://ws.bitstamp.net"
DEFAULT_REST_URL = "https://www.bitstamp.net"

RawLevels = list[tuple[str, str]]


class BookData(msgspec.Struct):
    """``data`` of ``order_book_<pair>`` (top 100) and ``diff_order_book_<pair>`` events."""

    microtimestamp: str
    bids: RawLevels
    asks: RawLevels
    timestamp: str | None = None


class RestOrderBook(msgspec.Struct):
    """REST ``GET /api/v2/order_book/<pair>/`` body (the full aggregated book)."""

    microtimestamp: str
    bids: RawLevels
    asks: RawLevels
    timestamp: str | None = None


class Envelope(msgspec.Struct):
    """Every frame: ``{"event": ..., "channel": ..., "data": ...}``; ``data`` decoded later."""

    event: str
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class ChannelRequest(msgspec.Struct):
    channel: str


class Request(msgspec.Struct):
    """Client -> venue: ``bts:subscribe``, ``bts:unsubscribe``, ``bts:heartbeat``."""

    event: str
    data: ChannelRequest | None = None


class ErrorData(msgspec.Struct):
    message: str = ""
    code: int | str | None = None
