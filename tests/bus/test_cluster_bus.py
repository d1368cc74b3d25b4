"""The bus on a three-node Redis Cluster: sharded pub/sub and latest values across nodes."""

from __future__ import annotations

import trio

from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import view_msg
from .redis_servers import RedisCluster

VENUES = [f"venue{i}" for i in range(12)]


async def test_sharded_pubsub_across_three_nodes(cluster: RedisCluster) -> None:
    config = BusConfig.from_url(cluster.url, prefix="test", timeout=2.0)
    assert config.cluster
    subjects = [view_subject(v, "ETH-BTC") for v in VENUES]
    publisher = BusPublisher(config, epoch=1)
    early_send, early = trio.open_memory_channel[Received](64)
    late_send, late = trio.open_memory_channel[Received](64)
    async with trio.open_nursery() as nursery:
        await nursery.start(BusSubscriber(config, subjects, early_send).run)
        await nursery.start(publisher.run)
        for venue, subject in zip(VENUES, subjects, strict=True):
            publisher.publish(subject, view_msg(venue=venue, instrument="ETH-BTC"))
        seen: dict[str, int] = {}
        with trio.fail_after(10):
            while len(seen) < len(subjects):
                got = await early.receive()
                assert not got.from_latest
                seen[got.message.subject] = got.message.seq
        assert seen == dict.fromkeys(subjects, 1)
        # Latest values live on every node (the subjects' slots spread over all three) ...
        for node in cluster.nodes:
            assert int(await node.cli_run("dbsize")) > 0
        # ... and a late subscriber reads them all back across the nodes.
        await nursery.start(BusSubscriber(config, subjects, late_send).run)
        with trio.fail_after(10):
            latest = [await late.receive() for _ in subjects]
        assert all(r.from_latest for r in latest)
        assert {r.message.body.venue for r in latest} == set(VENUES)  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
