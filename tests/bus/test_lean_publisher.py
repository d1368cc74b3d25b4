"""The publisher's own socket against a real redis-server: pipelined writes, NOSCRIPT, failures."""

from __future__ import annotations

import coredis
import trio

from dragonflybot.bus import codec
from dragonflybot.bus.connection import BusConfig, open_pubsub_stream
from dragonflybot.bus.publisher import PUBLISH_BATCH, BusPublisher
from dragonflybot.bus.script_wire import ScriptPipeline
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import view_msg, wait_until
from .redis_servers import RedisServer

INSTRUMENTS = [f"I{i}-USD" for i in range(40)]
SUBJECTS = [view_subject("binance", i) for i in INSTRUMENTS]


def view(subject: str, bid: str) -> codec.ViewMsg:
    return view_msg(instrument=INSTRUMENTS[SUBJECTS.index(subject)], bid=bid)


def raw_client(bus: BusConfig) -> coredis.Redis[bytes]:
    return coredis.Redis(bus.host, bus.port, connect_timeout=2, stream_timeout=2)


async def latest(bus: BusConfig, subject: str) -> codec.BusMessage | None:
    async with raw_client(bus) as raw:
        data = await raw.get(bus.names.key(subject))
    return None if data is None else codec.decode(data)


async def test_many_batches_in_flight_all_land_in_order(bus: BusConfig) -> None:
    send, receive = trio.open_memory_channel[Received](10_000)
    subscriber = BusSubscriber(bus, SUBJECTS, send)
    publisher = BusPublisher(bus, epoch=11)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        # One subject per batch, published without waiting: calls pipeline.
        for round_ in range(5):
            for subject in SUBJECTS:
                publisher.publish(subject, view(subject, f"{100 + round_}"))
                await trio.lowlevel.checkpoint()
        seen: dict[str, codec.BusMessage] = {}
        with trio.fail_after(5):
            while len(seen) < len(SUBJECTS) or any(
                m.body != view(s, "104") for s, m in seen.items()
            ):
                got = await receive.receive()
                seen[got.message.subject] = got.message
        nursery.cancel_scope.cancel()
    assert publisher.stats.batches > 1 and publisher.stats.published > len(SUBJECTS)
    assert subscriber.stats.gaps == 0 and publisher.stats.failures == 0
    for subject in SUBJECTS:
        message = await latest(bus, subject)
        assert message is not None
        assert message == seen[subject]


async def test_script_flush_is_answered_by_loading_it_again(bus: BusConfig) -> None:
    send, receive = trio.open_memory_channel[Received](100)
    subject = SUBJECTS[0]
    subscriber = BusSubscriber(bus, [subject], send)
    publisher = BusPublisher(bus, epoch=12)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        publisher.publish(subject, view(subject, "100"))
        assert (await receive.receive()).message.seq == 1
        async with raw_client(bus) as raw:
            await raw.script_flush()
        publisher.publish(subject, view(subject, "101"))
        with trio.fail_after(5):
            got = await receive.receive()
        assert (got.message.seq, got.message.body) == (2, view(subject, "101"))
        nursery.cancel_scope.cancel()
    assert publisher.stats.script_reloads == 1
    assert publisher.stats.failures == 0
    message = await latest(bus, subject)
    assert message is not None and message.body == view(subject, "101")


async def test_noscript_with_calls_in_flight_keeps_their_order(bus: BusConfig) -> None:
    """Three calls reach a Redis that lost the script: all fail, the retries run in
    order, so the key ends at the last value (not an older retried one)."""
    wire = ScriptPipeline(PUBLISH_BATCH)
    key = bus.names.key(SUBJECTS[0])
    async with raw_client(bus) as raw:
        await raw.script_flush()
    stream = await open_pubsub_stream(bus, bus.host, bus.port)
    async with stream:
        await stream.send_all(b"".join(wire.call([key], [v, "chan"]) for v in (b"1", b"2", b"3")))
        acknowledged: list[int] = []
        with trio.fail_after(5):
            while len(acknowledged) < 3:
                replies = wire.feed(await stream.receive_some(65536))
                acknowledged += replies.acknowledged
                if replies.resend:
                    await stream.send_all(replies.resend)
    assert wire.in_flight == 0
    async with raw_client(bus) as raw:
        assert await raw.get(key) == b"3"


async def test_error_reply_is_a_bus_failure_then_recovers(bus: BusConfig) -> None:
    """A Redis out of memory refuses the script: the session ends, is counted, and the
    publisher reports the bus down until a reconnect writes the value."""
    subject = SUBJECTS[0]
    publisher = BusPublisher(bus, epoch=13)
    async with trio.open_nursery() as nursery, raw_client(bus) as raw:
        await nursery.start(publisher.run)
        publisher.publish(subject, view(subject, "100"))
        await wait_until(lambda: publisher.stats.published == 1)
        await raw.config_set({"maxmemory": "1", "maxmemory-policy": "noeviction"})
        with publisher.status.subscribe() as status:
            publisher.publish(subject, view(subject, "101"))
            with trio.fail_after(5):
                while await status.receive():
                    pass
            assert publisher.stats.failures >= 1
            await raw.config_set({"maxmemory": "0"})
            with trio.fail_after(5):
                while not await status.receive():
                    pass
        await wait_until(lambda: publisher.stats.published >= 2)
        nursery.cancel_scope.cancel()
    message = await latest(bus, subject)
    assert message is not None and message.body == view(subject, "101")


async def test_a_refused_database_keeps_the_publisher_down(bus: BusConfig) -> None:
    config = BusConfig(bus.host, bus.port, db=99, names=bus.names, timeout=1.0, backoff_cap=0.05)
    publisher = BusPublisher(config, epoch=14)
    with trio.move_on_after(0.5):
        await publisher.run()
    assert publisher.stats.failures >= 2
    assert not publisher.connected


async def test_restart_mid_stream_reports_down_then_restores(
    redis: RedisServer, bus: BusConfig
) -> None:
    subject = SUBJECTS[0]
    publisher = BusPublisher(bus, epoch=15)
    flips: list[bool] = []

    async def stream_values() -> None:
        n = 0
        while True:
            n += 1
            publisher.publish(subject, view(subject, f"{100 + n}"))
            await trio.sleep(0.002)

    async def watch() -> None:
        with publisher.status.subscribe() as status:
            async for up in status:
                flips.append(up)

    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        nursery.start_soon(watch)
        nursery.start_soon(stream_values)
        await wait_until(lambda: publisher.stats.published >= 20)
        await redis.stop()
        await wait_until(lambda: not publisher.connected)
        published_while_down = publisher.stats.published
        await trio.sleep(0.2)
        # Nothing is acknowledged as written while Redis is gone.
        assert publisher.stats.published == published_while_down
        assert not publisher.connected
        await redis.start()
        await wait_until(lambda: publisher.connected)
        await wait_until(lambda: publisher.stats.published >= published_while_down + 20)
        nursery.cancel_scope.cancel()
    assert False in flips and flips[-1] is True
    assert publisher.stats.failures >= 1
    message = await latest(bus, subject)
    assert message is not None and message.epoch == 15
