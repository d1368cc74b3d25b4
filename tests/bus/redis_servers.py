"""Real Redis servers for tests: one ``redis-server`` or a three-node Redis Cluster.

Each server runs as a subprocess in its own temporary directory on a free
port, without persistence, and is killed when the test ends. Readiness is a
``PING`` answered over a plain trio socket, polled with a deadline.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

START_TIMEOUT = 10.0


def require_redis() -> tuple[str, str]:
    """Paths of ``redis-server`` and ``redis-cli``, or skip the test saying how to get them."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip(
            "redis-server/redis-cli not installed: `apt-get install redis-server` "
            "(`make test` installs it when run as root)"
        )
    return server, cli


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (bound together, so no duplicates)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def ping(port: int) -> bool:
    """True when a Redis on ``port`` answers PING (a plain RESP exchange)."""
    try:
        with trio.fail_after(1.0):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"PING\r\n")
                return (await stream.receive_some(64)).startswith(b"+PONG")
    except (OSError, trio.TooSlowError, trio.BrokenResourceError):
        return False


class RedisServer:
    """One ``redis-server`` process on a fixed port that a test can kill and start again."""

    def __init__(self, directory: Path, port: int, extra: Sequence[str] = ()) -> None:
        self.server, self.cli = require_redis()
        self.directory = directory
        self.port = port
        self.extra = tuple(extra)
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.server, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", *self.extra]
        self.process = await trio.lowlevel.open_process(
            args, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with trio.fail_after(START_TIMEOUT):
            while not await ping(self.port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited at start")
                await trio.sleep(0.02)

    async def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to clients, as in a crash)."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()

    async def cli_run(self, *args: str) -> bytes:
        result = await trio.run_process(
            [self.cli, "-p", str(self.port), *args], capture_stdout=True, capture_stderr=True
        )
        return bytes(result.stdout)


@asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[RedisServer]:
    (port,) = free_ports(1)
    server = RedisServer(directory, port)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


class RedisCluster:
    """Three masters, no replicas, slots split evenly by ``redis-cli --cluster create``."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"


@asynccontextmanager
async def redis_cluster(directory: Path) -> AsyncIterator[RedisCluster]:
    ports = free_ports(6)
    nodes = [
        RedisServer(
            directory / f"node{i}",
            ports[i],
            [
                "--cluster-enabled", "yes",
                "--cluster-port", str(ports[i + 3]),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
            ],
        )
        for i in range(3)
    ]  # fmt: skip
    try:
        for node in nodes:
            await node.start()
        cli = nodes[0].cli
        with trio.fail_after(START_TIMEOUT * 2):
            await trio.run_process(
                [cli, "--cluster", "create"]
                + [f"127.0.0.1:{n.port}" for n in nodes]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                capture_stdout=True,
                capture_stderr=True,
            )
            for node in nodes:
                while b"cluster_state:ok" not in await node.cli_run("cluster", "info"):  # noqa: ASYNC110
                    await trio.sleep(0.05)
        yield RedisCluster(nodes)
    finally:
        for node in nodes:
            await node.stop()
