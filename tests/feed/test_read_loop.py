"""The merged read loop: the task that owns the socket drives the venue protocol.

A diff venue's REST snapshot is fetched beside the read loop: frames keep being read
and buffered by the protocol while the request is out, and the body reaches the
protocol between two frames, in arrival order. Hypothesis plays every placement of
the body among the frames and every grouping of the frames into socket reads (frames
of one read are handed out without a checkpoint, as the wsproto client does); the
book the feed publishes must be the venue's. The deadlines are judged by a watchdog
task beside the loop: hypothesis plays the silences between frames. On the autojump
clock.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from itertools import pairwise
from typing import Any

import httpx
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.client import RestClient
from dragonflybot.config import VenueConfig
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView
from dragonflybot.feed import FeedStats, run_feed

DEPTH = 5
STREAM = "ethbtc@depth@100ms"


class BurstStream:
    """A ``MessageStream`` whose peer writes bursts: each burst is one socket read.

    The first frame of a burst costs a wait (a real read); the rest are handed out
    from the buffer without yielding, like ``WsprotoStream``.
    """

    def __init__(self) -> None:
        self.url = "wss://burst.invalid/stream"
        self.last_received = 0.0
        self._ready: deque[str] = deque()
        self._send, self._receive = trio.open_memory_channel[list[str]](1000)

    def write(self, frames: list[str]) -> None:
        self._send.send_nowait(frames)

    async def ping(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, message: str) -> None:
        request = json.loads(message)
        assert request["method"] == "SUBSCRIBE", request
        self.write([json.dumps({"result": None, "id": request["id"]})])
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        if self._ready:
            await trio.lowlevel.checkpoint_if_cancelled()
            return self._ready.popleft()
        self._ready.extend(await self._receive.receive())
        self.last_received = trio.current_time()
        return self._ready.popleft()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def connect(self, url: str, **_: Any) -> AsyncIterator[BurstStream]:
        yield self


Change = tuple[int, int]
"""A level change: (price, amount); amount 0 deletes."""

bid_changes = st.lists(st.tuples(st.integers(2, 20), st.integers(0, 3)), max_size=3)
ask_changes = st.lists(st.tuples(st.integers(21, 39), st.integers(0, 3)), max_size=3)
snapshot_side = st.dictionaries(st.integers(2, 39), st.integers(1, 3), max_size=6)


def diff(update_id: int, bids: list[Change], asks: list[Change]) -> str:
    data = {"e": "depthUpdate", "E": update_id, "s": "ETHBTC", "U": update_id, "u": update_id}
    data |= {"b": [[str(p), str(a)] for p, a in bids], "a": [[str(p), str(a)] for p, a in asks]}
    return json.dumps({"stream": STREAM, "data": data})


def top(side: dict[int, int], *, best_first_high: bool) -> tuple[Level, ...]:
    ordered = sorted(side.items(), reverse=best_first_high)[:DEPTH]
    return tuple(Level(parse(str(p)), parse(str(a))) for p, a in ordered)


@settings(max_examples=60)
@given(
    diffs=st.lists(st.tuples(bid_changes, ask_changes), min_size=1, max_size=12),
    snapshot=snapshot_side,
    data=st.data(),
)
def test_the_snapshot_meets_the_frames_in_arrival_order_whatever_the_reads(
    diffs: list[tuple[list[Change], list[Change]]],
    snapshot: dict[int, int],
    data: st.DataObject,
) -> None:
    n = len(diffs)
    # The request goes out on the first diff, so the body comes after it, and its id is
    # at least that diff's (an older snapshot is refetched: the venue's rule).
    released_after = data.draw(st.integers(1, n), label="frames read before the body")
    last_id = data.draw(st.integers(1, n), label="snapshot lastUpdateId")
    boundaries = st.sets(st.integers(1, n - 1)) if n > 1 else st.just(set[int]())
    cuts = data.draw(boundaries, label="socket read boundaries")
    # The venue's book: a floor level each side the diffs never touch, the snapshot's
    # levels on their side, then every diff after the snapshot's id.
    bids = {1: 1} | {p: a for p, a in snapshot.items() if p <= 20}
    asks = {40: 1} | {p: a for p, a in snapshot.items() if p > 20}
    rest_body = {
        "lastUpdateId": last_id,
        "bids": [[str(p), str(a)] for p, a in bids.items()],
        "asks": [[str(p), str(a)] for p, a in asks.items()],
    }
    for update_id, (bid_change, ask_change) in enumerate(diffs, 1):
        if update_id <= last_id:
            continue
        for side, changes in ((bids, bid_change), (asks, ask_change)):
            for price, amount in changes:
                if amount:
                    side[price] = amount
                else:
                    side.pop(price, None)
    expected = (top(bids, best_first_high=True), top(asks, best_first_high=False))
    frames = [diff(i, b, a) for i, (b, a) in enumerate(diffs, 1)]
    bounds = [0, *sorted(cuts), n]
    bursts = [frames[a:b] for a, b in pairwise(bounds)]

    async def scenario() -> None:
        stream = BurstStream()
        release = trio.Event()
        stats = FeedStats()

        async def answer(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200, content=json.dumps(rest_body).encode())

        async def read(count: int) -> None:
            """Wait until the feed has read ``count`` diffs (the ack is one frame more)."""
            while stats.frames < count + 1:  # noqa: ASYNC110  (plain counters)
                await trio.sleep(0.001)

        config = VenueConfig(name="binance", mode="depth", rest_url="http://rest.test")
        send, receive = trio.open_memory_channel[VenueUpdate](1000)
        rest = RestClient(transport=httpx.MockTransport(answer), max_retries=0)
        with trio.fail_after(60):
            async with rest, trio.open_nursery() as nursery:
                feed = partial(
                    run_feed,
                    config,
                    "ethbtc",
                    DEPTH,
                    send,
                    stats=stats,
                    rest_client=rest,
                    connect=stream.connect,
                )
                nursery.start_soon(feed)
                written = 0
                for burst in bursts:
                    if written <= released_after < written + len(burst):
                        # The body comes while this read's frames are still to come.
                        await read(written)
                        release.set()
                    stream.write(burst)
                    written += len(burst)
                await read(n)
                # Every frame before the release was read while the request was out.
                release.set()
                with trio.fail_after(10):
                    while stats.state != "live":  # noqa: ASYNC110
                        await trio.sleep(0.001)
                await trio.sleep(0.1)
                views = []
                while True:
                    try:
                        update = receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if isinstance(update, VenueView):
                        views.append(update)
                assert views, "no view published"
                assert (views[-1].bids, views[-1].asks) == expected
                assert stats.gaps == 0 and stats.resyncs == 0
                assert stats.frames == n + 1 and stats.malformed == 0
                nursery.cancel_scope.cancel()

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


PARTIAL = "ethbtc@depth20@100ms"
STALE_AFTER = 10.0
DEAD_AFTER = 30.0


def partial_frame(update_id: int) -> str:
    data = {"lastUpdateId": update_id, "bids": [[f"{update_id}", "1"]], "asks": [["9999", "1"]]}
    return json.dumps({"stream": PARTIAL, "data": data})


@settings(max_examples=40)
@given(
    # Half-second steps offset by a quarter: no gap ends exactly on a deadline.
    gaps=st.lists(st.integers(0, 2 * 40).map(lambda k: k / 2 + 0.25), min_size=1, max_size=10)
)
def test_the_watchdog_judges_every_silence_and_nothing_else(gaps: list[float]) -> None:
    """A feed whose frames come after ``gaps`` of silence (its pings unanswered): each
    gap longer than ``stale_after`` is one stale period (the venue reported down, then back
    with the next frame), the first gap longer than ``dead_after`` ends the connection, and
    a shorter gap costs nothing. Flowing frames never move the watchdog's verdicts."""
    dead_at = next((i for i, gap in enumerate(gaps) if gap > DEAD_AFTER), None)
    judged = gaps if dead_at is None else gaps[:dead_at]
    expected_stale = sum(gap > STALE_AFTER for gap in judged) + (dead_at is not None)

    async def scenario() -> None:
        stream = BurstStream()
        stats = FeedStats()
        config = VenueConfig(
            name="binance",
            mode="top",
            stale_after=STALE_AFTER,
            dead_after=DEAD_AFTER,
            heartbeat_interval=2.0,
        )
        send, receive = trio.open_memory_channel[VenueUpdate](1000)
        feed = partial(run_feed, config, "ethbtc", DEPTH, send, stats=stats, connect=stream.connect)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            stream.write([partial_frame(1)])
            for update_id, gap in enumerate(judged, 2):
                await trio.sleep(gap)
                stream.write([partial_frame(update_id)])
            if dead_at is not None:
                await trio.sleep(DEAD_AFTER + 1)
            else:
                await trio.sleep(1)
            updates: list[VenueUpdate] = []
            while True:
                try:
                    updates.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            assert stats.stale_periods == expected_stale
            assert stats.reconnects == (dead_at is not None)
            stale = [u for u in updates if isinstance(u, VenueDown) and u.state == "stale"]
            assert len(stale) == expected_stale
            if dead_at is None:
                # Every stale period ended by the next frame: the venue is back in the book.
                assert isinstance(updates[-1], VenueView)
                assert stats.state == "live"
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
