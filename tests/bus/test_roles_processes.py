"""The roles as real processes over a real redis-server: the deployment of docs/scaling.md.

Two feed processes (binance, bitstamp), one aggregator and two gateways, all
started from one config file by the installed entrypoints, against venues
simulated in this process (so the market can be frozen and each Summary
compared with the merge of what the simulator last sent). grpcio clients read
both gateways. Then the failures the bus exists to survive: a feed process
killed (its venue leaves the merge, then returns with a new process), Redis
restarted (gateways NOT_SERVING with no levels meanwhile, every role recovers),
a gateway killed (a ``--retry`` client on two gateways moves to the other).
Every wait is bounded.
"""

from __future__ import annotations

import json
import queue
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import trio
from cli.test_entrypoints import Proc, script
from e2e.conftest import INSTRUMENT, GrpcioReader, reading, settle

from dragonflybot.sim import SimConfig, SimHandle, serve_simulation

from .redis_servers import RedisServer

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"
STALE_AFTER = 1.5


def deploy_config(path: Path, sim: SimHandle, redis: RedisServer) -> str:
    """The one file every process reads."""
    venues = "".join(
        f'[[venues]]\nname = "{name}"\nmode = "depth"\nws_url = "{sim.endpoints[name].ws_url}"\n'
        f'rest_url = "{sim.endpoints[name].rest_url}"\nstale_after = 10.0\n'
        "backoff_base = 0.05\nbackoff_cap = 0.3\nconnect_timeout = 2.0\nrest_timeout = 2.0\n"
        for name in ("binance", "bitstamp")
    )
    path.write_text(
        f'[bus]\nurl = "{redis.url}"\nprefix = "e2e"\nstale_after = {STALE_AFTER}\n'
        "heartbeat_interval = 0.3\nrefresh_after = 0.3\ntimeout = 1.0\nbackoff_cap = 0.3\n\n"
        f'[[instruments]]\nname = "{INSTRUMENT}"\ndepth = 10\nlisten = "127.0.0.1:0"\n\n' + venues
    )
    return str(path)


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Every process started in the block is killed at its end, whatever happened."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.kill()
        for proc in started:
            proc.popen.wait(timeout=10)


async def start(started: list[Proc], ready: str, *args: str) -> tuple[Proc, re.Match[str]]:
    proc = Proc(*args)
    started.append(proc)
    return proc, await trio.to_thread.run_sync(proc.wait_for_line, ready, 30.0)


async def start_gateway(started: list[Proc], config: str) -> tuple[Proc, int]:
    proc, match = await start(
        started,
        r"listening on 127\.0\.0\.1:(\d+)",
        script("dragonflybot-grpc-server"),
        "--config",
        config,
        "--bus",
        "--listen",
        "127.0.0.1:0",
    )
    return proc, int(match[1])


async def start_feed(started: list[Proc], config: str, venue: str) -> Proc:
    proc, _ = await start(
        started,
        rf"feed ready: feed:{INSTRUMENT}:{venue}",
        script("dragonflybot"),
        "feed",
        "--config",
        config,
        "--venues",
        venue,
    )
    return proc


def health(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(HEALTH_CHECK, lambda _: b"", lambda data: data)
        answer: bytes = check(b"", timeout=5)
        return answer


async def wait_health(port: int, want: bytes) -> None:
    with trio.fail_after(20):
        while True:
            if await trio.to_thread.run_sync(health, port) == want:
                return
            await trio.sleep(0.05)


async def wait_empty(reader: GrpcioReader) -> None:
    """The stream says "nothing to show": no levels at all, never stale ones."""
    with trio.fail_after(20):
        while reader.latest is None or reader.latest.bids or reader.latest.asks:  # noqa: ASYNC110
            await trio.sleep(0.02)


async def settle_both(sim: SimHandle, readers: list[GrpcioReader], venues: list[str]) -> Any:
    """Both gateways show exactly the merge of ``venues``' published books."""
    want = None
    for reader in readers:
        got = await settle(sim, reader, venues, resume=False)
        assert want is None or got == want
        want = got
    sim.resume()
    return want


async def test_feeds_aggregator_gateways_as_processes_survive_failures(
    tmp_path: Path, redis: RedisServer
) -> None:
    both = ["binance", "bitstamp"]
    sim_config = SimConfig(venues=tuple(both), instruments=("ethbtc",), seed=5, rate=20.0)
    with processes() as started, trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            sim: SimHandle = await nursery.start(serve_simulation, sim_config)
            config = deploy_config(tmp_path / "deploy.toml", sim, redis)
            gateways = [await start_gateway(started, config) for _ in range(2)]
            (gw1, port1), (gw2, port2) = gateways
            # The gateways are up before anything publishes: NOT_SERVING, no levels.
            assert await trio.to_thread.run_sync(health, port1) == NOT_SERVING
            await start(
                started,
                r"bus subscriber on redis",
                script("dragonflybot"),
                "aggregate",
                "--config",
                config,
            )
            await start_feed(started, config, "bitstamp")
            binance = await start_feed(started, config, "binance")

            async with reading(f"127.0.0.1:{port2}") as reader2:
                reader1_scope = trio.CancelScope()
                readers: list[GrpcioReader] = []

                async def read_gateway1(*, task_status: trio.TaskStatus[GrpcioReader]) -> None:
                    with reader1_scope:
                        async with reading(f"127.0.0.1:{port1}") as reader1:
                            task_status.started(reader1)
                            await trio.sleep_forever()

                readers = [await nursery.start(read_gateway1), reader2]

                # Each gateway's Summary is the true merge of the two venues.
                await settle_both(sim, readers, both)
                await wait_health(port1, SERVING)
                await wait_health(port2, SERVING)

                # A feed process dies without a word: binance goes stale in the aggregator
                # (stale_after) and leaves the merge on both gateways; a new process brings
                # it back.
                binance.popen.kill()
                await settle_both(sim, readers, ["bitstamp"])
                await start_feed(started, config, "binance")
                await settle_both(sim, readers, both)

                # Redis restarts (losing every key): the gateways stop serving at once and
                # send no levels; every role reconnects and the merge comes back whole.
                await redis.stop()
                await wait_health(port1, NOT_SERVING)
                await wait_health(port2, NOT_SERVING)
                await wait_empty(readers[0])
                await wait_empty(readers[1])
                await redis.start()
                await settle_both(sim, readers, both)
                await wait_health(port1, SERVING)
                assert all(proc.popen.poll() is None for proc in started if proc is not binance)

                # A client with --retry on both gateways moves to the other when its own
                # dies; it names the instrument, so it streams dragonflybot.v1 from both.
                client = Proc(
                    script("dragonflybot-grpc-client"),
                    "--server",
                    f"127.0.0.1:{port1},127.0.0.1:{port2}",
                    "--instrument",
                    INSTRUMENT,
                    "--retry",
                    "--format",
                    "json",
                )
                started.append(client)
                first = await trio.to_thread.run_sync(next_book, client)
                assert first["bids"] and first["asks"]
                assert first["instrument"] == INSTRUMENT and first["sequence"] is not None
                reader1_scope.cancel()
                gw1.popen.kill()
                await trio.to_thread.run_sync(client.wait_for_line, rf"trying 127\.0\.0\.1:{port2}")
                moved = await trio.to_thread.run_sync(next_book, client)
                assert moved["n"] > first["n"]
                assert moved["bids"] and moved["asks"]
                assert moved["instrument"] == INSTRUMENT and moved["sequence"] is not None
                assert "no dragonflybot.v1 API" not in "".join(client.stderr)
                assert gw2.popen.poll() is None
            nursery.cancel_scope.cancel()


def next_book(client: Proc, timeout: float = 20.0) -> dict[str, Any]:
    """The client's next JSON line (skipping those it printed before)."""
    while True:
        try:
            line = client.stdout.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("".join(client.stderr)) from None
        book: dict[str, Any] = json.loads(line)
        return book
