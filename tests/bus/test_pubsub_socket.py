"""The subscriber's own pub/sub socket against a real redis-server: TLS, dropped
subscriptions, back-pressure."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme

from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received

from .helpers import view_msg, wait_until
from .redis_servers import RedisServer, free_ports

SUBJECT = view_subject("binance", "BTC-USDT")


async def next_received(receive: trio.MemoryReceiveChannel[Received]) -> Received:
    with trio.fail_after(5):
        return await receive.receive()


async def test_the_bus_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rediss://``: commands (coredis) and the pub/sub socket both verify the server's
    certificate against the trusted CAs (here a test CA, through ``SSL_CERT_FILE``)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = tmp_path / "tls"
    files.mkdir()
    ca.cert_pem.write_to_path(str(files / "ca.pem"))
    cert.private_key_pem.write_to_path(str(files / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(files / "cert.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(files / "ca.pem"))
    plain, tls_port = free_ports(2)
    server = RedisServer(
        tmp_path / "redis",
        plain,
        [
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(files / "cert.pem"),
            "--tls-key-file", str(files / "key.pem"),
            "--tls-ca-cert-file", str(files / "ca.pem"),
            "--tls-auth-clients", "no",
        ],
    )  # fmt: skip
    await server.start()
    try:
        bus = BusConfig.from_url(f"rediss://127.0.0.1:{tls_port}", prefix="tls", timeout=2.0)
        assert bus.tls
        send, receive = trio.open_memory_channel[Received](16)
        subscriber = BusSubscriber(bus, [SUBJECT], send)
        publisher = BusPublisher(bus, epoch=11)
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.run)
            publisher.publish(SUBJECT, view_msg(bid="100"))
            await wait_until(lambda: publisher.stats.published >= 1)
            await nursery.start(subscriber.run)
            assert (await next_received(receive)).from_latest
            publisher.publish(SUBJECT, view_msg(bid="101"))
            got = await next_received(receive)
            assert not got.from_latest and got.message.body == view_msg(bid="101")
            nursery.cancel_scope.cancel()
        # Nothing went over the plain port: the bus clients spoke TLS only.
        clients = (await server.cli_run("client", "list")).decode()
        assert clients.count("\n") == 1  # redis-cli itself
    finally:
        await server.stop()


async def test_an_untrusted_server_is_a_bus_failure_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = tmp_path / "tls"
    files.mkdir()
    cert.private_key_pem.write_to_path(str(files / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(files / "cert.pem"))
    ca.cert_pem.write_to_path(str(files / "ca.pem"))
    other = trustme.CA()  # the client trusts another CA only
    other.cert_pem.write_to_path(str(files / "other.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(files / "other.pem"))
    plain, tls_port = free_ports(2)
    server = RedisServer(
        tmp_path / "redis",
        plain,
        [
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(files / "cert.pem"),
            "--tls-key-file", str(files / "key.pem"),
            "--tls-ca-cert-file", str(files / "ca.pem"),
            "--tls-auth-clients", "no",
        ],
    )  # fmt: skip
    await server.start()
    try:
        bus = BusConfig(
            "127.0.0.1", tls_port, tls=True, timeout=1.0, backoff_base=0.02, backoff_cap=0.1
        )
        send, _receive = trio.open_memory_channel[Received](16)
        subscriber = BusSubscriber(bus, [SUBJECT], send)
        publisher = BusPublisher(bus, epoch=12)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscriber.run)
            nursery.start_soon(publisher.run)
            await wait_until(lambda: subscriber.stats.failures >= 2)
            await wait_until(lambda: publisher.stats.failures >= 2)
            assert not subscriber.connected and not publisher.connected
            nursery.cancel_scope.cancel()
    finally:
        await server.stop()


async def test_a_dropped_subscription_is_resubscribed(redis: RedisServer, bus: BusConfig) -> None:
    """``CLIENT KILL TYPE pubsub`` cuts the subscriber's socket: it reconnects, reads the
    latest value (what it missed meanwhile) and receives the stream again."""
    send, receive = trio.open_memory_channel[Received](16)
    subscriber = BusSubscriber(bus, [SUBJECT], send, idle_check=0.2)
    publisher = BusPublisher(bus, epoch=12)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        publisher.publish(SUBJECT, view_msg(bid="100"))
        assert (await next_received(receive)).message.seq == 1
        sessions = subscriber.stats.sessions
        assert b"1" in await redis.cli_run("client", "kill", "type", "pubsub")
        publisher.publish(SUBJECT, view_msg(bid="101"))
        await wait_until(lambda: subscriber.stats.sessions > sessions, limit=10)
        publisher.publish(SUBJECT, view_msg(bid="102"))
        bodies = []
        with trio.fail_after(5):
            while view_msg(bid="102") not in bodies:
                bodies.append((await receive.receive()).message.body)
        nursery.cancel_scope.cancel()
    # Whether 101 came on the stream or from the key, nothing was delivered twice
    # or out of order.
    assert bodies[-1] == view_msg(bid="102")
    assert subscriber.stats.failures >= 1


async def test_a_full_channel_stops_the_reading_not_the_order(bus: BusConfig) -> None:
    """With nobody receiving, the subscriber stops reading its socket (Redis holds the
    backlog); once the reader drains, every message arrives, in order, once."""
    send, receive = trio.open_memory_channel[Received](2)
    subscriber = BusSubscriber(bus, [SUBJECT], send)
    publisher = BusPublisher(bus, epoch=13)
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        await nursery.start(publisher.run)
        for i in range(50):
            publisher.publish(SUBJECT, view_msg(bid=str(100 + i)))
            await wait_until(lambda i=i: publisher.stats.published >= i + 1)  # type: ignore[misc]
        await wait_until(lambda: subscriber.stats.delivered >= 3)
        assert subscriber.stats.delivered < 50  # parked on the full channel
        seqs: list[int] = []
        with trio.fail_after(10):
            while not seqs or seqs[-1] < 50:
                seqs.append((await receive.receive()).message.seq)
        nursery.cancel_scope.cancel()
    assert seqs == list(range(1, 51))
    assert subscriber.stats.gaps == 0
