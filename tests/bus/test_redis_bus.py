"""Publisher and subscriber against a real redis-server: round trip, late start, gaps, restarts."""

from __future__ import annotations

import signal

import coredis
import pytest
import trio

from dragonflybot.bus import codec
from dragonflybot.bus import subscriber as subscriber_module
from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import down_msg, view_msg, wait_until
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


async def raw_client(bus: BusConfig) -> coredis.Redis[bytes]:
    return coredis.Redis(bus.host, bus.port, connect_timeout=2, stream_timeout=2)


async def test_late_subscriber_starts_from_the_latest_value(bus: BusConfig) -> None:
    publisher = BusPublisher(bus, epoch=1)
    send, receive = trio.open_memory_channel[Received](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for n, bid in enumerate(("100", "101", "102"), start=1):
            publisher.publish(SUBJECT, view_msg(bid=bid))
            # One at a time: values published while a write is in flight conflate.
            await wait_until(lambda n=n: publisher.stats.published >= n)
        subscriber = BusSubscriber(bus, [SUBJECT, view_subject("kraken", "BTC-USDT")], send)
        await nursery.start(subscriber.run)
        got = await next_received(receive)
        assert got.from_latest
        assert got.message.body == view_msg(bid="102")
        assert got.message.seq == publisher.stats.published
        # A subject nobody published yet delivers nothing; the stream continues.
        publisher.publish(SUBJECT, down_msg())
        got = await next_received(receive)
        assert (got.message.body, got.from_latest) == (down_msg(), False)
        nursery.cancel_scope.cancel()


async def test_gap_is_followed_by_a_latest_value_read(bus: BusConfig) -> None:
    names = bus.names
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send)

    def message(seq: int) -> bytes:
        return codec.encode(SUBJECT, 5, seq, 0, view_msg(bid=f"{100 + seq}"))

    async with await raw_client(bus) as raw, trio.open_nursery() as nursery:
        await raw.set(names.key(SUBJECT), message(1))
        await nursery.start(subscriber.run)
        assert (await next_received(receive)).message.seq == 1
        # Seq 2 was lost; 3 arrives on the channel while the key already holds 4.
        await raw.set(names.key(SUBJECT), message(4))
        await raw.publish(names.channel(SUBJECT), message(3))
        third, fourth = await next_received(receive), await next_received(receive)
        assert (third.message.seq, third.from_latest) == (3, False)
        assert (fourth.message.seq, fourth.from_latest) == (4, True)
        assert fourth.message.body == view_msg(bid="104")
        # The stream's copy of 4 is a duplicate now; 5 is delivered in order.
        await raw.publish(names.channel(SUBJECT), message(4))
        await raw.publish(names.channel(SUBJECT), message(5))
        assert (await next_received(receive)).message.seq == 5
        nursery.cancel_scope.cancel()
    assert subscriber.stats.gaps == 1
    assert subscriber.stats.duplicates == 1


async def test_bad_messages_are_counted_and_skipped(bus: BusConfig) -> None:
    names = bus.names
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send)
    wrong_version = bytearray(codec.encode(SUBJECT, 1, 1, 0, view_msg()))
    wrong_version[1] = 99  # the envelope's first element: the version
    async with await raw_client(bus) as raw, trio.open_nursery() as nursery:
        await raw.set(names.key(SUBJECT), b"\xc1 not msgpack")
        await nursery.start(subscriber.run)
        channel = names.channel(SUBJECT)
        await raw.publish(channel, b"garbage")
        await raw.publish(channel, bytes(wrong_version))
        await raw.publish(channel, codec.encode("view.other.BTC-USDT", 1, 1, 0, view_msg()))
        await raw.publish(channel, codec.encode(SUBJECT, 1, 1, 0, view_msg()))
        got = await next_received(receive)
        assert got.message.body == view_msg()
        nursery.cancel_scope.cancel()
    assert subscriber.codec.skipped == {"undecodable": 2, "version": 1, "invalid": 1}
    assert subscriber.stats.delivered == 1


async def test_redis_restart_both_sides_recover(redis: RedisServer, bus: BusConfig) -> None:
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send, idle_check=0.2)
    publisher = BusPublisher(bus, epoch=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        publisher.publish(SUBJECT, view_msg(bid="100"))
        assert (await next_received(receive)).message.body == view_msg(bid="100")

        with subscriber.status.subscribe() as sub_status:
            await redis.stop()
            # The subscriber notices the closed connection and reports the bus down.
            with trio.fail_after(5):
                while await sub_status.receive():
                    pass
            assert not subscriber.connected
            # Published while Redis is down: held in its slot, written after the restart.
            publisher.publish(SUBJECT, view_msg(bid="101"))
            await wait_until(lambda: not publisher.connected)
            await redis.start()
            with trio.fail_after(10):
                while not await sub_status.receive():
                    pass
        got = await next_received(receive)
        assert got.message.body == view_msg(bid="101")
        assert publisher.connected
        # The restarted Redis holds the latest value again (the publisher restored it).
        async with await raw_client(bus) as raw:
            data = await raw.get(bus.names.key(SUBJECT))
        assert data is not None
        assert codec.decode(data).body == view_msg(bid="101")
        publisher.publish(SUBJECT, view_msg(bid="102"))
        assert (await next_received(receive)).message.body == view_msg(bid="102")
        nursery.cancel_scope.cancel()
    assert subscriber.stats.failures >= 1
    assert publisher.stats.failures >= 1


async def test_close_writes_what_is_pending_then_run_returns(bus: BusConfig) -> None:
    publisher = BusPublisher(bus, epoch=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        publisher.publish(SUBJECT, view_msg(bid="99"))
        publisher.close()
    # The nursery exits only because run returned; the value reached Redis first.
    async with await raw_client(bus) as raw:
        data = await raw.get(bus.names.key(SUBJECT))
    assert data is not None and codec.decode(data).body == view_msg(bid="99")
    assert publisher.status.closed and not publisher.connected


async def test_refresh_rewrites_a_quiet_subject(bus: BusConfig) -> None:
    send, receive = trio.open_memory_channel[Received](16)
    publisher = BusPublisher(bus, epoch=4, refresh_after=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(BusSubscriber(bus, [SUBJECT], send).run)
        await nursery.start(publisher.run)
        publisher.publish(SUBJECT, view_msg())
        seqs = [(await next_received(receive)).message for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert [m.seq for m in seqs] == [1, 2, 3]
    assert all(m.body == view_msg() for m in seqs)
    assert publisher.stats.conflated == 0


async def test_a_hung_redis_is_noticed_by_its_deadlines(redis: RedisServer, bus: BusConfig) -> None:
    """SIGSTOP keeps the connections open and silent: only deadlines can tell."""
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send, idle_check=0.2)
    publisher = BusPublisher(bus, epoch=6)
    assert redis.process is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        redis.process.send_signal(signal.SIGSTOP)
        try:
            publisher.publish(SUBJECT, view_msg(bid="100"))
            await wait_until(lambda: not subscriber.connected and not publisher.connected)
        finally:
            redis.process.send_signal(signal.SIGCONT)
        await wait_until(lambda: subscriber.connected and publisher.connected, limit=10)
        got = await next_received(receive)
        assert got.message.body == view_msg(bid="100")
        nursery.cancel_scope.cancel()
    assert subscriber.stats.failures >= 1 and publisher.stats.failures >= 1


async def test_latest_values_are_read_in_chunks(
    bus: BusConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriber_module, "LATEST_CHUNK", 2)
    subjects = [view_subject(f"v{i}", "BTC-USDT") for i in range(5)]
    publisher = BusPublisher(bus, epoch=8)
    send, receive = trio.open_memory_channel[Received](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        for i, subject in enumerate(subjects):
            publisher.publish(subject, view_msg(venue=f"v{i}"))
        await wait_until(lambda: publisher.stats.published >= 5)
        subscriber = BusSubscriber(bus, subjects, send)
        await nursery.start(subscriber.run)
        got = [await next_received(receive) for _ in subjects]
        nursery.cancel_scope.cancel()
    assert sorted(r.message.subject for r in got) == sorted(subjects)
    assert all(r.from_latest for r in got)
    assert subscriber.stats.latest_reads == 5
