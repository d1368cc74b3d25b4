"""Simulated Binance + Bitstamp -> feeds -> aggregator -> gRPC -> grpcio.

Each test checks the consolidated stream against an independent source of truth:
the merge of the tops the simulator actually sent, computed here with core.merge.
"""

from __future__ import annotations

import pytest
import trio

from dragonflybot.config import Mode
from dragonflybot.sim import Faults
from dragonflybot.sim.faults import NO_FAULTS

from .conftest import reading, running, settle


async def wait_live(runtime: object, venues: set[str]) -> None:
    with trio.fail_after(15):
        while True:
            state = runtime.latest()  # type: ignore[attr-defined]
            if state is not None and state.live == venues:
                return
            await trio.sleep(0.01)


@pytest.mark.parametrize("mode", ["top", "depth"])
async def test_stream_equals_the_merge_of_what_the_venues_sent(mode: Mode) -> None:
    async with running((("binance", mode), ("bitstamp", mode))) as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            for _ in range(2):
                await trio.sleep(0.5)
                want = await settle(sim, reader, ["binance", "bitstamp"])
                assert {lv.exchange for lv in want.bids} == {"binance", "bitstamp"}
            assert reader.received > 5


async def test_disconnect_and_reconnect() -> None:
    async with running() as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            sim.set_faults("bitstamp", Faults(drop_after=20))
            with trio.fail_after(15):
                while rt.feed_stats["bitstamp"].reconnects < 2:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            sim.set_faults("bitstamp", NO_FAULTS)
            await wait_live(rt, {"binance", "bitstamp"})
            await settle(sim, reader, ["binance", "bitstamp"])
        assert rt.feed_stats["bitstamp"].downs >= 2


async def test_gap_resync() -> None:
    async with running() as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            sim.set_faults("binance", Faults(gap_every=15))
            with trio.fail_after(15):
                while rt.feed_stats["binance"].resyncs < 2:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            sim.set_faults("binance", NO_FAULTS)
            await wait_live(rt, {"binance", "bitstamp"})
            await settle(sim, reader, ["binance", "bitstamp"])
        assert rt.feed_stats["binance"].gaps >= 2


async def test_stalled_venue_is_excluded_then_back() -> None:
    async with running(stale_after=1.0) as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            sim.set_faults("bitstamp", Faults(stall_after=1, stall_seconds=3.0))
            await wait_live(rt, {"binance"})
            # While bitstamp is stale, no level of it reaches the client.
            with trio.fail_after(5):
                while True:
                    latest = reader.latest
                    if latest is not None and {lv.exchange for lv in latest.bids} == {"binance"}:
                        break
                    await trio.sleep(0.01)
            assert {lv.exchange for lv in latest.asks} == {"binance"}
            await wait_live(rt, {"binance", "bitstamp"})
            sim.set_faults("bitstamp", NO_FAULTS)
            await settle(sim, reader, ["binance", "bitstamp"])
        assert rt.feed_stats["bitstamp"].stale_periods >= 1


async def test_slow_client_beside_a_fast_one() -> None:
    """The fast client keeps the publication rate; the slow one skips to the newest state."""
    async with running(rate=100.0) as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        target = f"127.0.0.1:{rt.port}"
        # A client that keeps its HTTP/2 window small (as the project's own client does);
        # grpcio's default BDP-grown window would hold a backlog the server cannot reclaim.
        small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 4096)]
        async with (
            reading(target) as fast,
            reading(target, delay=0.1, options=small_window) as slow,
        ):
            start, fast_start = rt.publisher.books.published, fast.received
            await trio.sleep(3)
            published = rt.publisher.books.published - start
            fast_count = fast.received - fast_start
            want = await settle(sim, fast, ["binance", "bitstamp"], resume=False)
            slow_before = slow.received
            with trio.fail_after(10):
                while slow.latest != want:  # noqa: ASYNC110 - the reader is a thread
                    await trio.sleep(0.01)
            # What stood between the slow client and the newest state: a handful of
            # states (its small window), not the hundreds published meanwhile.
            backlog = slow.received - slow_before
        assert fast_count >= published / 2
        assert published > 100
        assert backlog <= 10
        assert slow.received * 3 < fast.received


async def test_all_venues_down_keeps_the_stream_open_with_the_empty_book() -> None:
    async with running() as (_, sim, rt):
        await wait_live(rt, {"binance", "bitstamp"})
        async with reading(f"127.0.0.1:{rt.port}") as reader:
            for v in ("binance", "bitstamp"):
                sim.set_faults(v, Faults(reject_subscriptions=True, drop_after=1))
            await wait_live(rt, set())
            with trio.fail_after(5):
                while reader.latest is None or len(reader.latest.bids):  # noqa: ASYNC110
                    await trio.sleep(0.01)
            assert (len(reader.latest.asks), reader.latest.spread) == (0, 0.0)
            assert rt.latest() is not None and not rt.latest().serving
