"""Hostile clients against a server process, measured from outside (docs/security.md).

    python -m benchmarks.hostile [--seconds N]

Starts ``tests/hostile/server_main.py`` (default ``[limits]``; a fake venue changing
the book every 10 ms, so a client sees up to ~100 Summaries/s) and a well-behaved
grpcio client streaming ``BookSummary`` in a third process. Then, one after
another: 20,000 rapid resets (HEADERS + RST_STREAM pairs, reconnecting whenever
cut), a PING flood, a connection flood to the limit and past it, and 2,000 streams
opened at once on one connection (repeated on a new connection whenever cut). For
each: the server's CPU (% of one core), its largest RSS, and the other client's
Summaries per second before, during and after the attack; and what the server
counted. Each figure is the median (min-max) of ``--runs`` runs, each against a new
server. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import grpc
import trio
import trio.lowlevel

from dragonflybot.config import LimitsConfig

SERVER_MAIN: Final = Path(__file__).parent.parent / "tests" / "hostile" / "server_main.py"
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BOOK_SUMMARY: Final = "/orderbook.OrderbookAggregator/BookSummary"
HEADERS: Final = (
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", BOOK_SUMMARY.encode()),
    (b":authority", b"bench"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
)
SETTLE: Final = 2.0
"""Seconds measured before and after each attack."""


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def header_block() -> bytes:
    """The request headers as HPACK literals without indexing."""
    out = b""
    for name, value in HEADERS:
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_MAIN), "{}"], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit(f"server did not start: {line!r}")
        self.port = int(line.split()[1])

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stats(self) -> dict[str, int]:
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        report: dict[str, int] = json.loads(self.proc.stdout.readline()[6:])
        return report

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


def _watch(port: int, counter: Any, stop: Any) -> None:
    """The well-behaved client (in its own process): count Summaries until ``stop``."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(
            BOOK_SUMMARY, request_serializer=lambda _: b"", response_deserializer=bytes
        )(b"", timeout=3600)
        try:
            for _ in call:
                counter.value += 1
                if stop.is_set():
                    call.cancel()
                    return
        except grpc.RpcError:
            return


class Watcher:
    """``_watch`` in a separate process, so that neither the attacker nor the server
    shares its interpreter (and its GIL)."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._counter = context.Value("q", 0)
        self.stop = context.Event()
        self.process = context.Process(target=_watch, args=(port, self._counter, self.stop))
        self.process.start()

    @property
    def count(self) -> int:
        value: int = self._counter.value
        return value

    def close(self) -> None:
        self.stop.set()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class Phase:
    """CPU, largest RSS and the watcher's rate over one interval."""

    def __init__(self, server: Server, watcher: Watcher) -> None:
        self.server = server
        self.watcher = watcher
        self.start = time.monotonic()
        self.cpu0 = server.cpu()
        self.count0 = watcher.count
        self.rss = server.rss_mb()

    def sample(self) -> None:
        self.rss = max(self.rss, self.server.rss_mb())

    def result(self) -> tuple[float, float, float]:
        elapsed = time.monotonic() - self.start
        cpu = (self.server.cpu() - self.cpu0) / elapsed * 100
        rate = (self.watcher.count - self.count0) / elapsed
        self.sample()
        return cpu, self.rss, rate


async def connect(port: int) -> trio.socket.SocketType:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    return sock


class Attacker:
    """One raw connection: sends what it is given, reads and discards the answers."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.cut = False

    async def send(self, data: bytes) -> bool:
        """Send ``data``; False once the server has cut the connection."""
        view = memoryview(data)
        try:
            while view and not self.cut:
                sent = await self.sock.send(view)
                view = view[sent:]
        except OSError:
            self.cut = True
        return not self.cut

    async def drain(self) -> None:
        """Read until EOF (so the server's writes never block), then mark the cut."""
        try:
            while await self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.cut = True


async def rapid_resets(server: Server, total: int = 20_000) -> str:
    """HEADERS + RST_STREAM pairs, reconnecting when cut, until the server saw ``total``."""
    block = header_block()
    rst = (0x8).to_bytes(4, "big")
    start = server.stats()["streams_reset"]
    connections = 0
    while server.stats()["streams_reset"] - start < total:
        attacker = Attacker(await connect(server.port))
        connections += 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attacker.drain)
            alive = await attacker.send(PREFACE + frame(0x4, 0, 0))
            sid = 1
            while alive:
                batch = b""
                for _ in range(100):
                    batch += frame(0x1, 0x5, sid, block) + frame(0x3, 0, sid, rst)
                    sid += 2
                alive = await attacker.send(batch)
                await trio.sleep(0.001)  # let the reader see the server's close
            nursery.cancel_scope.cancel()
        attacker.sock.close()
    seen = server.stats()["streams_reset"] - start
    return f"{seen} resets reached the server over {connections} connections"


async def ping_flood(port: int, seconds: float) -> str:
    ping = frame(0x6, 0, 0, bytes(8)) * 1000
    connections = 0
    with trio.move_on_after(seconds):
        while True:
            attacker = Attacker(await connect(port))
            connections += 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(attacker.drain)
                alive = await attacker.send(PREFACE + frame(0x4, 0, 0))
                while alive:
                    alive = await attacker.send(ping)
                    await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()
            attacker.sock.close()
    return f"PINGs as fast as one client task can write, over {connections} connections"


async def connection_flood(port: int, seconds: float, limit: int) -> str:
    socks = []
    for _ in range(limit + 100):
        try:
            socks.append(await connect(port))
        except OSError:
            break
    for sock in socks:
        await Attacker(sock).send(PREFACE + frame(0x4, 0, 0))
    await trio.sleep(seconds)
    for sock in socks:
        sock.close()
    return f"{len(socks)} connections opened and held {seconds:.0f} s (limit {limit})"


async def many_streams(port: int, seconds: float, streams: int = 2000) -> str:
    block = header_block()
    burst = b"".join(
        frame(0x1, 0x4, sid, block) + frame(0x0, 0x1, sid, bytes(5))
        for sid in range(1, 2 * streams, 2)
    )
    rounds = 0
    with trio.move_on_after(seconds):
        while True:
            attacker = Attacker(await connect(port))
            rounds += 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(attacker.drain)
                await attacker.send(PREFACE + frame(0x4, 0, 0) + burst)
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
            attacker.sock.close()
    return f"{rounds} connections each opening {streams} streams at once"


async def measure(
    server: Server, watcher: Watcher, name: str, attack: Callable[[], Awaitable[str]]
) -> dict[str, Any]:
    before = Phase(server, watcher)
    await trio.sleep(SETTLE)
    row: dict[str, Any] = {"attack": name, "before": before.result()}
    stats0 = server.stats()
    during = Phase(server, watcher)

    async def sampler() -> None:
        while True:
            during.sample()
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sampler)
        row["detail"] = await attack()
        nursery.cancel_scope.cancel()
    row["during"] = during.result()
    row["seconds"] = time.monotonic() - during.start
    after = Phase(server, watcher)
    await trio.sleep(SETTLE)
    row["after"] = after.result()
    stats1 = server.stats()
    row["counted"] = {
        k: stats1[k] - stats0[k]
        for k in stats1
        if not k.startswith("open_") and stats1[k] != stats0[k]
    }
    return row


def table(runs: list[list[dict[str, Any]]]) -> str:
    """Each figure as the median (min-max) of the runs; counts from the first run."""
    lines = [
        "| attack | phase | server CPU (% of a core) | server RSS (MB, max) | "
        "other client (Summaries/s) |",
        "|---|---|---:|---:|---:|",
    ]
    for i, row in enumerate(runs[0]):
        rows = [run[i] for run in runs]
        for phase in ("before", "during", "after"):
            label = row["attack"] if phase == "before" else ""
            extra = ""
            if phase == "during":
                extra = f" ({statistics.median(r['seconds'] for r in rows):.1f} s)"
            cells = [
                spread([r[phase][k] for r in rows], digits) for k, digits in enumerate((0, 1, 1))
            ]
            lines.append(f"| {label} | {phase}{extra} | {' | '.join(cells)} |")
    lines.append("")
    for row in runs[0]:
        counted = ", ".join(f"{k} {v}" for k, v in sorted(row["counted"].items()))
        lines.append(f"- **{row['attack']}**: {row['detail']}; the server counted: {counted}.")
    return "\n".join(lines)


def spread(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


async def run(seconds: float) -> tuple[int, list[dict[str, Any]]]:
    """One run of every attack against a new server: (its exit code, the rows)."""
    server = Server()
    limit = LimitsConfig().max_connections
    try:
        watcher = Watcher(server.port)
        await trio.sleep(2.0)
        rows = [
            await measure(server, watcher, "20,000 rapid resets", lambda: rapid_resets(server)),
            await measure(server, watcher, "PING flood", lambda: ping_flood(server.port, seconds)),
            await measure(
                server,
                watcher,
                "connection flood to the limit",
                lambda: connection_flood(server.port, seconds, limit),
            ),
            await measure(
                server,
                watcher,
                "2,000 streams at once",
                lambda: many_streams(server.port, seconds),
            ),
        ]
        watcher.close()
    finally:
        code = server.stop()
    return code, rows


async def run_all(seconds: float, runs: int) -> int:
    results = [await run(seconds) for _ in range(runs)]
    print(table([rows for _, rows in results]))
    codes = [code for code, _ in results]
    print(f"\nserver exit codes after SIGTERM: {codes}")
    return 0 if not any(codes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the timed attacks")
    parser.add_argument("--runs", type=int, default=3, help="runs (a new server each)")
    args = parser.parse_args(argv)
    return trio.run(run_all, args.seconds, args.runs)


if __name__ == "__main__":
    raise SystemExit(main())
