"""A stream-snapshot venue through the real feed session: a checksum failure resubscribes.

``streamex`` is a small venue defined here the way Kraken or OKX plug in: a
``BookProtocol`` over a ``StreamSync`` (snapshot on the stream, CRC32 over the top
levels' wire strings, a ``seq``/``prev`` chain). A scripted ``MessageStream`` plays the
venue. A corrupt checksum takes the venue out of the book at once (``VenueDown``), the
session sends the unsubscribe and subscribe frames in order (counted, logged), and the
fresh snapshot brings it back: no reconnect, no REST.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

import msgspec
import pytest
import trio
import trio.testing

from dragonflybot.config import VenueConfig
from dragonflybot.core.book import WireLevel
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.venues.base import BAD_INPUT, Event, Ignored
from dragonflybot.venues.book_protocol import BookProtocol
from dragonflybot.venues.book_sync import StreamSync
from dragonflybot.venues.registry import venue_map
from dragonflybot.venues.spec import VenueSpec

NAME: Final = "streamex"
SUBSCRIBE: Final = '{"op":"subscribe"}'
UNSUBSCRIBE: Final = '{"op":"unsubscribe"}'


def checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    return checksum_texts([f"{p}:{a}" for p, a in bids], [f"{p}:{a}" for p, a in asks])


def checksum_texts(bids: Sequence[str], asks: Sequence[str]) -> int:
    return zlib.crc32(":".join([*bids[:3], *asks[:3]]).encode())


def wired(levels: list[tuple[str, str]]) -> list[WireLevel]:
    return [(parse(p), parse(a), f"{p}:{a}") for p, a in levels]


class Message(msgspec.Struct):
    type: str
    seq: int = 0
    prev: int = 0
    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []
    checksum: int = 0


class Sync(StreamSync):
    def __init__(self) -> None:
        super().__init__(keep_wire=True, depth=10)

    def resubscribe_frames(self) -> tuple[str, ...]:
        return (UNSUBSCRIBE, SUBSCRIBE)

    def continues(self, position: int, first: int, last: int) -> bool:
        return first == position

    def integrity(self) -> str | None:
        failure = super().integrity()
        if failure is not None or self.checksum is None:
            return failure
        got = checksum_texts(*self.book.wires(3))
        return None if got == self.checksum else self.checksum_mismatch(got)


class StreamexProtocol(BookProtocol[Sync]):
    def __init__(self, config: VenueConfig, instrument: str) -> None:
        super().__init__(NAME, "depth", config.ws_url or "", "", (instrument,), Sync())

    def _subscribe_text(self) -> str:
        return SUBSCRIBE

    def receive(self, frame: str | bytes) -> list[Event]:
        try:
            msg = msgspec.json.decode(frame, type=Message)
            bids = wired(msg.bids)
            asks = wired(msg.asks)
        except BAD_INPUT as exc:
            return self._skip(str(exc))
        sync = self._diff
        if msg.type == "subscribed":
            return self._acknowledged()
        if msg.type == "snapshot":
            return sync.on_wire_snapshot(msg.seq, bids, asks, None, msg.checksum)
        if msg.type == "update":
            return sync.on_wire_update(msg.prev, msg.seq, bids, asks, None, msg.checksum)
        return [Ignored(msg.type)]


SPEC: Final = VenueSpec(
    name=NAME,
    create=StreamexProtocol,
    default_ws_url="wss://streamex.invalid/ws",
    default_rest_url="",
    symbol=str,
    sim=f"{__name__}:NO_SIM",
)

BIDS: Final = [("0.050", "1"), ("0.049", "2")]
ASKS: Final = [("0.051", "1"), ("0.052", "3")]


class ScriptedVenue:
    """The venue's end of one connection: answers subscribe with ack + snapshot."""

    def __init__(self) -> None:
        self.url = "wss://streamex.invalid/ws"
        self.sent: list[str] = []
        self.connections = 0
        self._send, self._receive = trio.open_memory_channel[str](100)

    @property
    def last_received(self) -> float:
        return trio.current_time()

    async def ping(self) -> None:
        await trio.lowlevel.checkpoint()

    async def push(self, **message: Any) -> None:
        await self._send.send(json.dumps(message))

    async def send(self, message: str) -> None:
        self.sent.append(message)
        if message == SUBSCRIBE:
            await self.push(type="subscribed")
            await self.push(
                type="snapshot", seq=1, bids=BIDS, asks=ASKS, checksum=checksum(BIDS, ASKS)
            )

    async def receive(self) -> str | bytes:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def connect(self, url: str, **_: Any) -> AsyncIterator[ScriptedVenue]:
        self.connections += 1
        yield self


async def test_a_checksum_failure_resubscribes_that_symbol_only(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    venue = ScriptedVenue()
    stats = FeedStats()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    config = VenueConfig(name=NAME, mode="depth", ws_url=venue.url)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                run_feed,
                config,
                "ETH-BTC",
                5,
                send,
                stats=stats,
                connect=venue.connect,
                venues=venue_map(SPEC),
            )
        )
        first = await receive.receive()
        assert isinstance(first, VenueView) and len(first.bids) == 2
        # A good update, then one whose checksum does not match the book it makes.
        bids = [("0.050", "5"), *BIDS[1:]]
        await venue.push(
            type="update",
            seq=2,
            prev=1,
            bids=[("0.050", "5")],
            asks=[],
            checksum=checksum(bids, ASKS),
        )
        view = await receive.receive()
        assert isinstance(view, VenueView) and view.bids[0].amount == parse("5")
        await venue.push(type="update", seq=3, prev=2, bids=[("0.048", "1")], checksum=12345)
        down = await receive.receive()
        assert isinstance(down, VenueDown) and "checksum mismatch" in down.reason
        back = await receive.receive()  # the fresh snapshot after the resubscription
        assert isinstance(back, VenueView) and back.bids[0].amount == parse("1")
        nursery.cancel_scope.cancel()
    assert venue.sent == [SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE]
    assert venue.connections == 1 and stats.reconnects == 0
    assert stats.resubscribes == 1 and stats.sync.integrity_failures == 1
    assert stats.snapshot_requests == 0
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("resubscribing" in m and "checksum mismatch" in m for m in logged)
