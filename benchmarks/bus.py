"""The Redis bus: latency of one bus hop and what one publisher can push.

    .venv/bin/python -m benchmarks.bus [--url redis://host:port] [--quick]

Starts a ``redis-server`` on a free loopback port (unless ``--url`` names one)
and a subscriber in a second process, as roles run in a deployment. One hop is
``BusPublisher.publish`` in this process -> publisher task -> script call (SET +
PUBLISH) -> Redis -> subscriber session -> decoded ``Received`` in the other
process, timed on the shared wall clock. Beside it, the in-process hop the bus
replaces: a trio memory channel between two tasks.

Phases: (1) latency, paced messages (default 1,000/s over 10 subjects) so the
hop is measured unloaded; (2) throughput, one publisher keeping 200 subjects'
slots full for a few seconds: messages written per second, and delivered per
second to one subscriber of all 200 subjects. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager

import trio
import trio.lowlevel

from dragonflybot.bus import codec
from dragonflybot.bus.codec import ViewMsg, wire_levels
from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received
from dragonflybot.core.fixed import parse

INSTRUMENTS = [f"I{i:03d}-USD" for i in range(200)]
LEVELS = wire_levels([(parse("65000.5") - i * parse("0.5"), parse("1.25")) for i in range(10)])
ASK_LEVELS = wire_levels([(parse("65001") + i * parse("0.5"), parse("0.75")) for i in range(10)])


def body(instrument: str, stamp_ns: int) -> ViewMsg:
    """A depth-10 view; ``recv_ns`` carries the publish time for the latency sample."""
    return ViewMsg("bench", instrument, LEVELS, ASK_LEVELS, None, None, stamp_ns)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


# ---------------------------------------------------------------- subscriber process


async def subscriber_main(url: str, subjects: int, count: int, limit: float) -> None:
    config = BusConfig.from_url(url, prefix="bench")
    wanted = [view_subject("bench", i) for i in INSTRUMENTS[:subjects]]
    send, receive = trio.open_memory_channel[Received](10_000)
    subscriber = BusSubscriber(config, wanted, send)
    latencies: list[float] = []
    legs: list[float] = []
    first = last = 0.0
    cpu_first = cpu_last = 0.0
    async with trio.open_nursery() as nursery:
        await nursery.start(subscriber.run)
        print("ready", flush=True)
        with trio.move_on_after(limit):
            async for received in receive:
                if received.from_latest:
                    continue
                now = time.time_ns()
                msg = received.message.body
                assert isinstance(msg, ViewMsg)
                latencies.append((now - msg.recv_ns) / 1000)
                legs.append((now - received.message.sent_ns) / 1000)
                last = time.perf_counter()
                cpu_last = time.process_time()
                if len(latencies) == 1:
                    first, cpu_first = last, cpu_last
                if len(latencies) >= count:
                    break
        nursery.cancel_scope.cancel()
    elapsed = last - first
    cpu = cpu_last - cpu_first
    result = {"latencies_us": latencies, "legs_us": legs, "elapsed": elapsed, "cpu": cpu}
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- publisher side


@contextmanager
def redis_server() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server not found: apt-get install redis-server (or pass --url)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no"]
        process = subprocess.Popen(args, cwd=directory, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                        c.sendall(b"PING\r\n")
                        if c.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.kill()
            process.wait()


async def start_subscriber(
    url: str, subjects: int, count: int, limit: float
) -> tuple[trio.Process, trio.abc.ReceiveStream]:
    args = [sys.executable, "-m", "benchmarks.bus", "--subscriber", "--url", url]
    args += ["--subjects", str(subjects), "--count", str(count), "--limit", str(limit)]
    process = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE)
    assert process.stdout is not None
    stream = process.stdout
    with trio.fail_after(20):
        line = await stream.receive_some(64)
    if not line.startswith(b"ready"):
        raise SystemExit(f"subscriber did not start: {line!r}")
    return process, stream


async def read_result(process: trio.Process, stream: trio.abc.ReceiveStream) -> dict[str, object]:
    chunks = []
    with trio.fail_after(120):
        while data := await stream.receive_some(1 << 20):
            chunks.append(data)
        await process.wait()
    result: dict[str, object] = json.loads(b"".join(chunks).decode())
    return result


async def latency_phase(url: str, count: int, rate: float) -> tuple[list[float], list[float]]:
    config = BusConfig.from_url(url, prefix="bench")
    process, stream = await start_subscriber(url, 10, count, count / rate + 10)
    publisher = BusPublisher(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        subjects = [view_subject("bench", i) for i in INSTRUMENTS[:10]]
        interval = 1 / rate
        next_at = trio.current_time()
        for n in range(count):
            i = n % 10
            publisher.publish(subjects[i], body(INSTRUMENTS[i], time.time_ns()))
            next_at += interval
            await trio.sleep_until(next_at)
        result = await read_result(process, stream)
        nursery.cancel_scope.cancel()
    latencies = result["latencies_us"]
    legs = result["legs_us"]
    assert isinstance(latencies, list) and isinstance(legs, list)
    return sorted(float(v) for v in latencies), sorted(float(v) for v in legs)


async def throughput_phase(url: str, seconds: float) -> tuple[float, float, float, float]:
    config = BusConfig.from_url(url, prefix="bench")
    subjects = [view_subject("bench", i) for i in INSTRUMENTS]
    process, stream = await start_subscriber(url, len(subjects), 10**9, seconds + 3)
    publisher = BusPublisher(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.run)
        start = time.perf_counter()
        cpu_start = time.process_time()
        before = publisher.stats.published
        while time.perf_counter() - start < seconds:
            stamp = time.time_ns()
            for subject, instrument in zip(subjects, INSTRUMENTS, strict=True):
                publisher.publish(subject, body(instrument, stamp))
            await trio.lowlevel.checkpoint()
        count = publisher.stats.published - before
        written = count / (time.perf_counter() - start)
        publisher_cpu_us = (time.process_time() - cpu_start) / count * 1e6
        result = await read_result(process, stream)
        nursery.cancel_scope.cancel()
    latencies = result["latencies_us"]
    elapsed = result["elapsed"]
    cpu = result["cpu"]
    assert isinstance(latencies, list) and isinstance(elapsed, float)
    assert isinstance(cpu, float)
    delivered = len(latencies) / elapsed if elapsed else float("nan")
    subscriber_cpu_us = cpu / len(latencies) * 1e6 if latencies else float("nan")
    return written, publisher_cpu_us, delivered, subscriber_cpu_us


async def in_process_phase(count: int, rate: float) -> list[float]:
    send, receive = trio.open_memory_channel[int](100)
    latencies: list[float] = []

    async def reader() -> None:
        async for stamp in receive:
            latencies.append((time.perf_counter_ns() - stamp) / 1000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        next_at = trio.current_time()
        async with send:
            for _ in range(count):
                await send.send(time.perf_counter_ns())
                next_at += 1 / rate
                await trio.sleep_until(next_at)
    return sorted(latencies)


async def main(url: str | None, count: int, rate: float, seconds: float) -> None:
    with redis_server() if url is None else _given(url) as bus_url:
        bus, legs = await latency_phase(bus_url, count, rate)
        local = await in_process_phase(count, rate)
        written, pub_cpu, delivered, sub_cpu = await throughput_phase(bus_url, seconds)
    encode_us, decode_us = codec_costs()
    cpu = _cpu()
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(
        f"command: python -m benchmarks.bus{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}"
    )
    print("\n| path | messages | p50 µs | p99 µs | max µs |\n|---|---|---|---|---|")
    for name, values in (("bus hop (loopback Redis, 2 processes)", bus),
                         ("  of which: write start -> delivered", legs),
                         ("in-process trio memory channel", local)):  # fmt: skip
        print(
            f"| {name} | {len(values)} | {percentile(values, 0.5):.0f} | "
            f"{percentile(values, 0.99):.0f} | {max(values, default=float('nan')):.0f} |"
        )
    print(f"\none publisher, 200 subjects, depth-10 views, {seconds:g} s:")
    print(
        f"written {written:,.0f} msg/s at {pub_cpu:.1f} µs of publisher CPU per message "
        f"(building the view included); delivered to one subscriber {delivered:,.0f} msg/s "
        f"at {sub_cpu:.1f} µs of subscriber CPU per message; mean bus hop "
        f"{statistics.fmean(bus):.0f} µs"
    )
    print(f"codec, depth-10 view: encode {encode_us:.1f} µs, decode + validate {decode_us:.1f} µs")


def codec_costs() -> tuple[float, float]:
    """Best-of-five µs per encode and per decode of a depth-10 view (no I/O)."""
    subject = view_subject("bench", INSTRUMENTS[0])
    view = body(INSTRUMENTS[0], 0)
    data = codec.encode(subject, 1, 1, 0, view)
    n = 5000
    encode = min(timeit.repeat(lambda: codec.encode(subject, 1, 1, 0, view), number=n, repeat=5))
    decode = min(timeit.repeat(lambda: codec.decode(data), number=n, repeat=5))
    return encode / n * 1e6, decode / n * 1e6


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="an existing Redis (default: start one on loopback)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subjects", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=5000, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        trio.run(subscriber_main, args.url, args.subjects, args.count, args.limit)
        return
    count, seconds = (500, 1.0) if args.quick else (args.count, 5.0)
    trio.run(main, args.url, count, 1000.0, seconds)


if __name__ == "__main__":
    cli()
