"""Publisher and subscriber against a real redis-server: round trip, late start, gaps, restarts."""

from __future__ import annotations

import coredis
import trio

from dragonflybot.bus import codec
from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import down_msg, view_msg
from .redis_servers import RedisServer

SUBJECT = view_subject("binance", "BTC-USDT")


async def next_received(receive: trio.MemoryReceiveChannel[Received]) -> Received:
    with trio.fail_after(5):
        return await receive.receive()


async def test_publish_subscribe_round_trip(bus: BusConfig) -> None:
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send)
    publisher = BusPublisher(bus, epoch=7)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        assert subscriber.connected and publisher.connected
        first, second = view_msg(bid="100.5"), view_msg(bid="101")
        publisher.publish(SUBJECT, first)
        got = await next_received(receive)
        assert (got.message.body, got.message.seq, got.message.epoch) == (first, 1, 7)
        assert not got.from_latest
        publisher.publish(SUBJECT, second)
        got = await next_received(receive)
        assert (got.message.body, got.message.seq) == (second, 2)
        nursery.cancel_scope.cancel()
    assert subscriber.stats.gaps == 0
    assert subscriber.codec.skipped_total == 0
