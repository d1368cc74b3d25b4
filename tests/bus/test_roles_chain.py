"""Feed -> aggregator -> gateway over a real redis-server, each role with its own bus clients.

The roles run as tasks here (the processes come with the CLI wiring), but each
talks to the others only through Redis, as separate processes would: two feeds
publish views and heartbeats, an aggregator merges what its gate lets through
and publishes books, a gateway turns books into serving states.
"""

from __future__ import annotations

import time

import trio

from dragonflybot.aggregator.aggregator import Aggregator
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.ingest import BookGate, ViewGate, run_book_ingest, run_view_ingest
from dragonflybot.bus.outlet import BookOutlet, ViewOutlet
from dragonflybot.bus.publisher import BusPublisher, run_heartbeats
from dragonflybot.bus.subjects import book_subject, feed_subject, view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received
from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueUpdate, VenueView

from .redis_servers import RedisServer

INSTRUMENT = "BTC-USDT"
STALE_AFTER = 1.0


def venue_view(venue: str, bid: str, ask: str) -> VenueView:
    return VenueView(
        venue,
        (Level(parse(bid), parse("1")),),
        (Level(parse(ask), parse("2")),),
        None,
        time.monotonic_ns(),
    )


async def run_feed(
    bus: BusConfig,
    view: VenueView,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A feed process: its view once, then heartbeats while it lives."""
    publisher = BusPublisher(bus)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        ViewOutlet(publisher, INSTRUMENT).publish(view)
        await nursery.start(run_heartbeats, publisher, [view.venue], STALE_AFTER / 5)
        task_status.started()


async def run_aggregator_role(
    bus: BusConfig,
    venues: list[str],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    subjects = [view_subject(v, INSTRUMENT) for v in venues] + [feed_subject(v) for v in venues]
    deliveries_send, deliveries = trio.open_memory_channel[Received](64)
    updates_send, updates = trio.open_memory_channel[VenueUpdate](64)
    subscriber = BusSubscriber(bus, subjects, deliveries_send, idle_check=0.2)
    publisher = BusPublisher(bus, refresh_after=STALE_AFTER / 5)
    aggregator = Aggregator(10, BookOutlet(publisher, INSTRUMENT))
    gate = ViewGate(INSTRUMENT, STALE_AFTER)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        await nursery.start(aggregator.run, updates)
        await nursery.start(run_view_ingest, gate, deliveries, subscriber.status, updates_send)
        await nursery.start(subscriber.run)
        task_status.started()


async def run_gateway_role(
    bus: BusConfig,
    states: Fanout[BookState],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    deliveries_send, deliveries = trio.open_memory_channel[Received](64)
    subscriber = BusSubscriber(bus, [book_subject(INSTRUMENT)], deliveries_send, idle_check=0.2)
    gate = BookGate(INSTRUMENT, STALE_AFTER)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_book_ingest, gate, deliveries, subscriber.status, states)
        await nursery.start(subscriber.run)
        task_status.started()


async def wait_for_live(reader: object, live: set[str]) -> BookState:
    with trio.fail_after(10):
        async for state in reader:  # type: ignore[attr-defined]
            if state.live == live:
                return state  # type: ignore[no-any-return]
    raise AssertionError("gateway states ended")


async def test_feeds_aggregator_gateway_over_redis_and_a_dead_feed(bus: BusConfig) -> None:
    alpha = venue_view("alpha", "100", "101")
    beta = venue_view("beta", "100.5", "102")
    states: Fanout[BookState] = Fanout()
    async with trio.open_nursery() as nursery:
        with states.subscribe() as reader:
            await nursery.start(run_gateway_role, bus, states)
            await nursery.start(run_aggregator_role, bus, ["alpha", "beta"])
            alpha_feed = trio.CancelScope()

            async def alpha_process() -> None:
                with alpha_feed:
                    await run_feed(bus, alpha)

            nursery.start_soon(alpha_process)
            await nursery.start(run_feed, bus, beta)

            both = await wait_for_live(reader, {"alpha", "beta"})
            assert both.book == merge([alpha, beta], 10)
            assert [lv.venue for lv in both.book.bids] == ["beta", "alpha"]

            alpha_feed.cancel()  # the alpha feed process dies: no more heartbeats
            only_beta = await wait_for_live(reader, {"beta"})
            assert only_beta.book == merge([beta], 10)

            alpha_again = venue_view("alpha", "100.7", "100.9")
            await nursery.start(run_feed, bus, alpha_again)  # restarted (a new epoch)
            back = await wait_for_live(reader, {"alpha", "beta"})
            assert back.book == merge([alpha_again, beta], 10)
            nursery.cancel_scope.cancel()


async def wait_for_serving(reader: object, serving: bool) -> BookState:
    with trio.fail_after(10):
        async for state in reader:  # type: ignore[attr-defined]
            if state.serving == serving:
                return state  # type: ignore[no-any-return]
    raise AssertionError("gateway states ended")


async def test_dead_aggregator_and_redis_restart_never_serve_stale_books(
    redis: RedisServer, bus: BusConfig
) -> None:
    alpha = venue_view("alpha", "100", "101")
    beta = venue_view("beta", "100.5", "102")
    states: Fanout[BookState] = Fanout()
    async with trio.open_nursery() as nursery:
        with states.subscribe() as reader:
            await nursery.start(run_gateway_role, bus, states)
            await nursery.start(run_feed, bus, alpha)
            await nursery.start(run_feed, bus, beta)
            aggregator = trio.CancelScope()

            async def aggregator_process(*, task_status: trio.TaskStatus[None]) -> None:
                with aggregator:
                    await run_aggregator_role(bus, ["alpha", "beta"], task_status=task_status)

            await nursery.start(aggregator_process)
            assert (await wait_for_live(reader, {"alpha", "beta"})).book == merge([alpha, beta], 10)

            # The aggregator dies: its refreshes stop and the gateway stops serving its book.
            aggregator.cancel()
            stopped = await wait_for_serving(reader, False)
            assert stopped.book.bids == () and stopped.book.asks == ()
            await nursery.start(run_aggregator_role, bus, ["alpha", "beta"])
            assert (await wait_for_live(reader, {"alpha", "beta"})).book == merge([alpha, beta], 10)

            # Redis restarts (losing every key): the gateway stops serving at once, then every
            # role reconnects, the feeds restore their views and the merge comes back whole.
            await redis.stop()
            down = await wait_for_serving(reader, False)
            assert down.book.bids == ()
            await redis.start()
            assert (await wait_for_live(reader, {"alpha", "beta"})).book == merge([alpha, beta], 10)
            nursery.cancel_scope.cancel()
