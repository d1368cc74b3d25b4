"""WebSocket receive floor: how fast each client backend alone takes frames off a socket.

The simulator (its own process) replays Binance diff frames as fast as the client reads
(wsproto server, batched writes); the client process (pinned like the service) runs only
``connect_websocket(url, backend=...)`` and a ``receive()`` loop, for both backends behind
``dragonflybot.client.MessageStream``: the lean wsproto loop (the feeds' default) and
trio-websocket. Nothing is parsed: this is the ceiling the transport puts on a feed.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from typing import Final

import trio

from benchmarks import rig
from benchmarks.harness import Options, Suite, Table, spread
from benchmarks.throughput import captures

SUBSCRIBE: Final = '{"method":"SUBSCRIBE","params":["ethbtc@depth@100ms"],"id":1}'


def receiver_child(conn: Connection, url: str, backend: str, frames: int) -> None:
    rig.pin({rig.SERVICE_CPU})
    from dragonflybot.client import connect_websocket

    async def main() -> tuple[float, float]:
        async with connect_websocket(url, backend=backend) as ws:  # type: ignore[arg-type]
            await ws.send(SUBSCRIBE)
            await ws.receive()  # the ack
            await ws.receive()  # the first frame: playback started
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(frames - 2):
                await ws.receive()
            return time.perf_counter() - t0, time.process_time() - c0

    wall, cpu = trio.run(main)
    conn.send((frames - 2, wall, cpu))


def run(options: Options) -> list[Table]:
    count = 20_000 if options.quick else 150_000
    repeats = 1 if options.quick else 3
    paths = captures("diff", count)
    sim, endpoints = rig.start_sim(
        replay=tuple(paths), as_fast_as_possible=True, ws_backend="wsproto"
    )
    table = Table(
        "WebSocket receive only",
        f"{count:,} Binance diff frames per run (simulated, ~370 bytes each), received and "
        f"discarded; median (min-max) of {repeats} runs; client pinned to one core.",
        ["backend", "frames/s", "client CPU µs/frame"],
    )
    try:
        for backend in ("wsproto", "trio-websocket"):
            rates, cpus = [], []
            for _ in range(repeats):
                proc, conn = rig.start(receiver_child, endpoints["binance"][0], backend, count)
                try:
                    n, wall, cpu = conn.recv() if conn.poll(300) else (0, 1.0, 0.0)
                finally:
                    rig.stop(proc)
                rates.append(n / wall)
                cpus.append(cpu / n * 1e6 if n else 0.0)
            table.rows.append(
                [
                    backend,
                    spread(rates),
                    spread(cpus, ".2f"),
                ]
            )
            print("  ", table.rows[-1], flush=True)
    finally:
        rig.stop(sim)
    return [table]


SUITE = Suite(
    name="receive",
    title="Floors: WebSocket receive",
    run=run,
    packages=("trio", "wsproto", "trio-websocket"),
    timing="- Timing: wall clock and CPU time of the receiving process",
)
