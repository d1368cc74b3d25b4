"""The FIX acceptor in the running app: FIX snapshots equal the gRPC Summary of each state."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio
import trustme
from service.conftest import grpcio_take

from dragonflybot.app import App, plan_topology, run_app
from dragonflybot.config import (
    AppConfig,
    InstrumentConfig,
    VenueConfig,
    decode_config,
    load_config,
)
from dragonflybot.core.view import VenueUpdate, VenueView
from dragonflybot.errors import ConfigError
from dragonflybot.feed import FeedStats
from dragonflybot.fix.codec import Message
from dragonflybot.fix.config import FixConfig, FixSessionEntry
from dragonflybot.venues.registry import VENUES as VENUES_REGISTRY
from dragonflybot.venues.spec import VenueSpec

from .rig import CLIENT, SERVER, RawClient
from .test_server_sockets import view

pytest.importorskip("quickfix")

from .qf import QuickFixClient

VENUES = ("binance", "bitstamp")


class ScriptedFeeds:
    """Feeds that send what the test hands them, then wait (a quiet market)."""

    def __init__(self) -> None:
        self.channels = {v: trio.open_memory_channel[VenueView](8) for v in VENUES}
        self.depths: list[int] = []

    async def __call__(
        self,
        config: VenueConfig,
        instrument: str,
        depth: int,
        send: trio.MemorySendChannel[VenueUpdate],
        *,
        stats: FeedStats | None = None,
        venues: Mapping[str, VenueSpec] = VENUES_REGISTRY,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self.depths.append(depth)
        receive = self.channels[config.name][1]
        async with send:
            task_status.started()
            async for update in receive:
                await send.send(update)

    async def push(self, *views: VenueView) -> None:
        for v in views:
            await self.channels[v.venue][0].send(v)


def app_config(**fix: object) -> AppConfig:
    return AppConfig(
        instruments=[InstrumentConfig(name="ethbtc", depth=4, listen="127.0.0.1:0")],
        venues=[VenueConfig(name=v) for v in VENUES],
        liquidity_depth=6,
        fix=FixConfig(
            listen="127.0.0.1:0",
            sessions=[FixSessionEntry(sender_comp_id=SERVER, target_comp_id=CLIENT, password="pw")],
            **fix,  # type: ignore[arg-type]
        ),
        shutdown_grace=0.5,
    )


def grpc_summary(port: int) -> object:
    return grpcio_take(f"127.0.0.1:{port}", 1)[0]


def fix_levels(
    msg: Message,
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]]]:
    bids: list[tuple[str, float, float]] = []
    asks: list[tuple[str, float, float]] = []
    current: dict[int, str] = {}
    rows = []
    for tag, value in msg.fields:
        if tag == 269 and current:
            rows.append(current)
            current = {}
        if tag in (269, 270, 271, 275):
            current[tag] = value
    if current:
        rows.append(current)
    for row in rows:
        level = (row[275], float(row[270]), float(row[271]))
        (bids if row[269] == "0" else asks).append(level)
    return bids, asks


async def test_every_fix_snapshot_equals_the_grpc_summary(tmp_path: Path) -> None:
    feeds = ScriptedFeeds()
    config = app_config()
    assert plan_topology(config)[0].feed_depth == 6
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(config, feed_runner=feeds, task_status=task_status)
        )
        runtime = app.instruments["ETH-BTC"]
        assert app.fix_server is not None and runtime.liquidity is not None
        client = QuickFixClient(app.fix_server.port, tmp_path)
        await client.start()
        assert await client.next("logon") == "logon"
        states = [
            (view("binance", "10", "11"), view("bitstamp", "10", "11.5", "2")),
            (view("binance", "10.25", "10.75", "3"), view("bitstamp", "9.5", "12", "0.125")),
            (view("bitstamp", "10.5", "10.5", "7"),),
        ]
        for i, views in enumerate(states):
            seq = runtime.publisher.books.latest()
            before = seq.state.seq if seq is not None else 0
            await feeds.push(*views)
            with trio.fail_after(5):
                with runtime.publisher.books.subscribe() as books:
                    async for book in books:
                        if book.state.seq > before:
                            break
                await trio.sleep(0.05)  # the batch is merged: the market is quiet again
            summary = await trio.to_thread.run_sync(grpc_summary, runtime.port)
            client.md_request(f"s{i}", "ETH-BTC", sub="0")
            snap = await client.next("W")
            assert isinstance(snap, Message)
            bids, asks = fix_levels(snap)
            assert bids == [(lv.exchange, lv.price, lv.amount) for lv in summary.bids]  # type: ignore[attr-defined]
            assert asks == [(lv.exchange, lv.price, lv.amount) for lv in summary.asks]  # type: ignore[attr-defined]
            assert bids or asks
        registry = app.registry
        assert registry.get_sample_value("dragonflybot_fix_snapshots_total") == len(states)
        assert registry.get_sample_value("dragonflybot_fix_sessions_active") == 1
        assert registry.get_sample_value("dragonflybot_fix_garbled_messages_total") == 0
        await client.stop()
        assert feeds.depths == [6, 6]  # the feeds serve the deeper of the two aggregators
        app.shutdown()


async def test_fix_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    await trio.Path(cert_path).write_bytes(chain)
    cert.private_key_pem.write_to_path(str(key_path))
    feeds = ScriptedFeeds()
    config = app_config(tls_cert=str(cert_path), tls_key=str(key_path))
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(config, feed_runner=feeds, task_status=task_status)
        )
        await feeds.push(view("binance", "10", "11"))
        assert app.fix_server is not None
        context = ssl.create_default_context()
        ca.configure_trust(context)
        tcp = await trio.open_tcp_stream("127.0.0.1", app.fix_server.port)
        client = RawClient(trio.SSLStream(tcp, context, server_hostname="127.0.0.1"))
        assert (await client.logon()).msg_type == "A"
        await client.subscribe("t1", update="0")
        assert (await client.receive_type("W")).get(262) == "t1"
        await client.send("5")
        assert (await client.receive_type("5")).msg_type == "5"
        app.shutdown()


def test_fix_config_keys() -> None:
    config = decode_config(
        b"""
liquidity_depth = 12
[fix]
listen = "127.0.0.1:9878"
[[fix.sessions]]
sender_comp_id = "DF"
target_comp_id = "BANK1"
password = "pw"
[[instruments]]
name = "ethbtc"
liquidity_depth = 8
"""
    )
    assert config.fix is not None and config.fix.sessions[0].target_comp_id == "BANK1"
    assert plan_topology(config)[0].liquidity_depth == 8
    for bad, match in (
        (b'[fix]\nlisten = "nowhere"', "fix.listen"),
        (b'[fix]\ntls_cert = "a.pem"', "tls_cert and fix.tls_key"),
        (b"[fix]\nmin_heartbeat = 50\nmax_heartbeat = 10", "min_heartbeat"),
        (b'[fix]\nlisten = "127.0.0.1:50051"\n[[instruments]]\nname = "ethbtc"', "already used"),
        (b"[fix]\nbogus = 1", "fix.bogus"),
    ):
        with pytest.raises(ConfigError, match=match):
            decode_config(bad)
    # Without [fix] and liquidity_depth there is no second aggregator.
    plain = AppConfig(instruments=[InstrumentConfig(name="ethbtc")])
    assert plan_topology(plain)[0].liquidity_depth is None


def test_the_example_gateway_config_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "fix-gateway.toml"
    config = load_config(path)
    assert config.fix is not None and len(config.fix.sessions) == 2
    assert {plan.liquidity_depth for plan in plan_topology(config)} == {20}
