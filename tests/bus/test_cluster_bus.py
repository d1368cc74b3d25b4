"""The bus on a three-node Redis Cluster: sharded pub/sub and latest values across nodes."""

from __future__ import annotations

import trio

from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import view_msg, wait_until
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


async def test_a_cluster_node_restart_is_survived(cluster: RedisCluster) -> None:
    config = BusConfig.from_url(cluster.url, prefix="test", timeout=1.0)
    config = BusConfig(
        config.host, config.port, cluster=True, names=config.names, timeout=1.0,
        backoff_base=0.05, backoff_cap=0.5,
    )  # fmt: skip
    subjects = [view_subject(v, "ETH-BTC") for v in VENUES]
    publisher = BusPublisher(config, epoch=1)
    send, receive = trio.open_memory_channel[Received](256)
    subscriber = BusSubscriber(config, subjects, send, idle_check=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        victim = cluster.nodes[1]
        await victim.stop()
        await wait_until(lambda: not subscriber.connected, limit=10)
        await victim.start()  # same port and nodes.conf: it rejoins with its slots
        await wait_until(lambda: subscriber.connected, limit=20)
        for venue, subject in zip(VENUES, subjects, strict=True):
            publisher.publish(subject, view_msg(venue=venue, instrument="ETH-BTC", bid="7"))
        seen: set[str] = set()
        with trio.fail_after(20):
            while len(seen) < len(subjects):
                got = await receive.receive()
                if got.message.body == view_msg(
                    venue=got.message.body.venue,  # type: ignore[union-attr]
                    instrument="ETH-BTC",
                    bid="7",
                ):
                    seen.add(got.message.subject)
        nursery.cancel_scope.cancel()


async def test_a_subject_whose_slot_moves_is_followed_to_its_new_node(
    cluster: RedisCluster,
) -> None:
    """Resharding: the old owner drops the sharded subscription (``sunsubscribe``), and the
    subscriber's next session reads the topology again and subscribes on the new owner."""
    config = BusConfig(
        "127.0.0.1", cluster.nodes[0].port, cluster=True, timeout=1.0,
        backoff_base=0.02, backoff_cap=0.2,
    )  # fmt: skip
    subject = view_subject("mover", "ETH-BTC")
    key = config.names.key(subject)
    slot = int(await cluster.nodes[0].cli_run("cluster", "keyslot", key))
    ids = {}
    for node in cluster.nodes:
        ids[node.port] = (await node.cli_run("cluster", "myid")).decode().strip()
    publisher = BusPublisher(config, epoch=21)
    send, receive = trio.open_memory_channel[Received](64)
    subscriber = BusSubscriber(config, [subject], send, idle_check=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        await nursery.start(subscriber.run)
        publisher.publish(subject, view_msg(venue="mover", instrument="ETH-BTC", bid="1"))
        with trio.fail_after(10):
            assert (await receive.receive()).message.seq == 1
        sessions = subscriber.stats.sessions
        # The owner is the node holding the subject's latest value.
        counts = [
            int(await n.cli_run("cluster", "countkeysinslot", str(slot))) for n in cluster.nodes
        ]
        assert sorted(counts) == [0, 0, 1]
        owner = cluster.nodes[counts.index(1)]
        target = next(n for n in cluster.nodes if n is not owner)
        # Move the slot (and its latest-value key) from its owner to another node.
        await target.cli_run("cluster", "setslot", str(slot), "importing", ids[owner.port])
        await owner.cli_run("cluster", "setslot", str(slot), "migrating", ids[target.port])
        await owner.cli_run("migrate", "127.0.0.1", str(target.port), "", "0", "5000", "keys", key)
        for node in (target, owner, *(n for n in cluster.nodes if n not in (owner, target))):
            await node.cli_run("cluster", "setslot", str(slot), "node", ids[target.port])
        await wait_until(lambda: subscriber.stats.sessions > sessions, limit=10)
        publisher.publish(subject, view_msg(venue="mover", instrument="ETH-BTC", bid="2"))
        with trio.fail_after(15):
            while True:
                got = await receive.receive()
                if got.message.body == view_msg(venue="mover", instrument="ETH-BTC", bid="2"):
                    break
        nursery.cancel_scope.cancel()
    assert subscriber.stats.failures >= 1
    assert int(await target.cli_run("cluster", "countkeysinslot", str(slot))) == 1
