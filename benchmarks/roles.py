"""The roles over Redis: feeds split over processes, and 1,000 clients over two gateways.

(a) Throughput with four venue feeds (Binance + Bitstamp for ethbtc and btcusdt), the
simulator replaying captures as fast as the service reads them, as in the
``throughput`` suite: one process (``run_app``: feeds, aggregator, gRPC server with one
grpcio client; its figure comes from ``throughput.one_run``, pinned to one core), against
the same four feeds split over two ``feed`` processes (Binance in one, Bitstamp in the
other, not pinned) publishing to a redis-server, with an ``aggregate`` process merging.
Figure: venue frames consumed per second, both processes together, from the moment
every feed is live until the replay ends; beside it, the views the aggregator took
per second over the same time (it conflates: a view is the newest book of a venue).

(b) Fan-out: the simulator at a steady pace, one ``feed`` + ``aggregate`` process
publishing books, two gateway processes (``serve`` over the bus, each with the
per-client cap), 100 or 1,000 clients spread over both (four client processes, half the
clients on each gateway). The clients are raw-HTTP/2 streams (``benchmarks.h2client``:
one trio process holds hundreds; at 1,000 ``benchmarks.leanclient``, the same streams on
one epoll loop, cheap enough to read 20,000 Summaries/s on one core), and for continuity
grpcio clients at 100 (a thread and a channel each; at 1,000 they starve the two cores:
docs/scaling.md). Per client: Summaries per second, how many got under 90 % of the
cap, how many streams a gateway ended early; beside it, the aggregator's publications
per second, to see that the fan-out does not hold it back.

Each role runs in its own process (``multiprocessing`` spawn, like ``rig``); Redis is
the Debian ``redis-server`` on a free port, without persistence.
"""

from __future__ import annotations

import functools
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any, Final

import trio

from benchmarks import fanout, rig, throughput
from benchmarks.bus import redis_server
from benchmarks.fanout import ended_early, per_client
from benchmarks.harness import Options, Suite, Table, spread

FANOUT_RATE: Final = 200
"""Venue frames per second in total for the fan-out case (half per venue)."""
FANOUT_CAP: Final = 20.0
FANOUT_CLIENTS: Final = 1_000


def role_child(
    conn: Connection,
    plan: rig.Plan,
    bus_url: str,
    role_names: list[str],
    feed_venues: list[str] | None,
    max_seconds: float,
    max_client_rate: float,
) -> None:
    """One role process: ready -> "go" (feeds start) -> measures -> "stop" -> reports."""
    from dragonflybot.app_roles import Role, Roles, run_roles
    from dragonflybot.config import AppConfig, BusSettings, LimitsConfig
    from dragonflybot.feed import run_feed

    config = AppConfig(
        instruments=rig.plan_instruments(plan),
        depth=10,
        log_level="WARNING",
        max_client_rate=max_client_rate,
        # A gateway of the fan-out case holds hundreds of client connections.
        limits=LimitsConfig(max_connections=rig.MAX_CLIENTS),
    )
    roles = Roles(
        frozenset(Role(r) for r in role_names),
        BusSettings(url=bus_url, prefix="bench", stale_after=30.0, refresh_after=1.0),
        frozenset(feed_venues) if feed_venues is not None else None,
    )
    go = trio.Event()
    agg_only = "aggregate" in role_names  # measured until "stop", not until the replay ends

    async def gated_feed(*args: Any, **kwargs: Any) -> None:
        await go.wait()
        await run_feed(*args, **kwargs)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            app = await nursery.start(
                functools.partial(run_roles, config, roles, feed_runner=gated_feed)
            )
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)
            go.set()
            feeds = [s for rt in app.instruments.values() for s in rt.feed_stats.values()]
            agg = [rt.aggregator_stats for rt in app.instruments.values()]
            with trio.move_on_after(30):
                while not all(s.state == "live" for s in feeds):  # noqa: ASYNC110
                    await trio.sleep(0.002)

            def sample() -> tuple[float, float, int, int, int]:
                return (
                    time.perf_counter(),
                    time.process_time(),
                    sum(s.frames for s in feeds),
                    sum(a.updates for a in agg),
                    sum(a.publications for a in agg),
                )

            begin = sample()
            moved = final = begin
            while final[0] - begin[0] < max_seconds and not conn.poll():
                await trio.sleep(0.01)
                final = sample()
                if final[2] != moved[2] or final[3] != moved[3]:
                    moved = final
                elif feeds and not agg_only and final[0] - moved[0] > 0.5:
                    break  # the replay has ended
            if conn.poll():
                conn.recv()
            conn.send({"begin": begin, "moved": moved, "final": final})
            app.shutdown()

    trio.run(main)


def start_roles(specs: list[tuple[Any, ...]]) -> list[tuple[Any, Connection]]:
    started = [rig.start(role_child, *spec) for spec in specs]
    for _, conn in started:
        if not conn.poll(60):
            raise RuntimeError("a role process did not start")
        conn.recv()
    return started


def split_run(endpoints: dict[str, tuple[str, str]], mode: str, bus_url: str) -> dict[str, float]:
    feed_mode = throughput.FEED_MODE[mode]
    plan: rig.Plan = [
        (name, rig.free_port(), [(v, feed_mode, *endpoints[v]) for v in venues])
        for name, venues in throughput.LAYOUTS["4"]
    ]
    aggregator, *feeds = started = start_roles(
        [
            (plan, bus_url, ["aggregate"], None, 120.0, 0.0),
            (plan, bus_url, ["feed"], ["binance"], 120.0, 0.0),
            (plan, bus_url, ["feed"], ["bitstamp"], 120.0, 0.0),
        ]
    )
    try:
        for _, conn in started:
            conn.send("go")
        reports = []
        for _, conn in feeds:
            if not conn.poll(180):
                raise RuntimeError("a feed process did not report")
            reports.append(conn.recv())
        aggregator[1].send("stop")
        agg = aggregator[1].recv() if aggregator[1].poll(30) else None
    finally:
        for proc, _ in started:
            rig.stop(proc)
    t0 = min(r["begin"][0] for r in reports)
    t1 = max(r["moved"][0] for r in reports)
    frames = sum(r["moved"][2] - r["begin"][2] for r in reports)
    cpu = sum(r["moved"][1] - r["begin"][1] for r in reports)
    views = 0.0
    if agg is not None:
        views = (agg["final"][3] - agg["begin"][3]) / (agg["final"][0] - agg["begin"][0])
    return {
        "rate": frames / (t1 - t0) if t1 > t0 else 0.0,
        "views": views,
        "cpu_us": cpu / frames * 1e6 if frames else 0.0,
    }


def throughput_table(options: Options) -> Table:
    count = 20_000 if options.quick else 60_000
    repeats = 1 if options.quick else 3
    table = Table(
        "Four venue feeds: one process vs split over two feed processes",
        f"Each of the four venue connections (Binance + Bitstamp, ethbtc + btcusdt) replays "
        f"{count:,} simulated frames as fast as it is read. *one process*: `run_app` "
        "(feeds, two aggregators, gRPC server, one grpcio client), pinned to one core. "
        "*two feed processes*: `dragonflybot feed` roles (Binance | Bitstamp, not pinned) "
        "publishing to redis-server, an `aggregate` process merging. The simulator, Redis "
        "and the aggregator share the same two cores. Runs alternate between the layouts; "
        f"median (min-max) of {repeats}.",
        [
            "mode",
            "one process frames/s",
            "two feed processes frames/s",
            "ratio (measured)",
            "one process CPU µs/frame",
            "feed process CPU µs/frame",
            "ratio with a core each",
            "aggregator views/s (split)",
        ],
    )
    with redis_server() as bus_url:
        for mode in ("diff", "snapshot"):
            paths = throughput.captures(mode, count)
            sim, endpoints = rig.start_sim(
                replay=tuple(paths), as_fast_as_possible=True, ws_backend="wsproto"
            )
            try:
                single: list[dict[str, float]] = []
                split: list[dict[str, float]] = []
                for _ in range(repeats):  # alternate, so load on the machine hits both alike
                    # Ends once every replayed frame is in (not at a stray heartbeat).
                    single.append(throughput.one_run(endpoints, "4", mode, count))
                    split.append(split_run(endpoints, mode, bus_url))
                ratio = statistics.median(s["rate"] for s in split) / statistics.median(
                    s["rate"] for s in single
                )
                cpu_one = statistics.median(s["cpu_us"] for s in single)
                cpu_feed = statistics.median(s["cpu_us"] for s in split)
                table.rows.append(
                    [
                        mode,
                        spread([s["rate"] for s in single]),
                        spread([s["rate"] for s in split]),
                        f"{ratio:.2f}x",
                        spread([s["cpu_us"] for s in single], ".2f"),
                        spread([s["cpu_us"] for s in split], ".2f"),
                        f"{2 * cpu_one / cpu_feed:.2f}x" if cpu_feed else "—",
                        spread([s["views"] for s in split]),
                    ]
                )
                print("  ", table.rows[-1], flush=True)
            finally:
                rig.stop(sim)
    return table


def fanout_run(seconds: float, count: int = FANOUT_CLIENTS, kind: str = "h2") -> dict[str, Any]:
    sim, endpoints = rig.start_sim(
        venues=("binance", "bitstamp"),
        instruments=("ethbtc",),
        rate=FANOUT_RATE / 2,
        ws_backend="wsproto",
    )
    started: list[tuple[Any, Connection]] = []
    clients: list[tuple[Any, Connection]] = []
    try:
        with redis_server() as bus_url:
            venues = [(v, "depth", *endpoints[v]) for v in ("binance", "bitstamp")]
            ports = [rig.free_port(), rig.free_port()]
            started = start_roles(
                [
                    # Until told to stop (the clients take a while to connect).
                    ([("ethbtc", 0, venues)], bus_url, ["feed", "aggregate"], None, 600.0, 0.0),
                    *(
                        ([("ethbtc", port, venues)], bus_url, ["serve"], None, 600.0, FANOUT_CAP)
                        for port in ports
                    ),
                ]
            )
            per_process = count // 4
            for i in range(4):
                target = f"127.0.0.1:{ports[i % 2]}"
                clients.append(rig.start(fanout.CLIENTS[kind], [target] * per_process, False, 0.0))
            for _, conn in started:
                conn.send("go")
            for _, conn in clients:
                if not conn.poll(120):
                    raise RuntimeError("gRPC clients did not connect")
                conn.recv()
            time.sleep(seconds)
            for _, conn in clients:
                conn.send("stop")
            outs = [conn.recv() if conn.poll(60) else [] for _, conn in clients]
            for _, conn in started:
                conn.send("stop")
            reports = [conn.recv() if conn.poll(30) else None for _, conn in started]
    finally:
        for proc, _ in clients + started:
            rig.stop(proc)
        rig.stop(sim)
    agg = reports[0]
    publications = 0.0
    if agg is not None:
        publications = (agg["final"][4] - agg["begin"][4]) / (agg["final"][0] - agg["begin"][0])
    rates = [r for out in outs for r in per_client([o for o in out if o is not None])]
    sent = sum(o[0] for out in outs for o in out if o is not None)
    gateways = [r for r in reports[1:] if r is not None]
    cpu = [(r["final"][1] - r["begin"][1]) / (r["final"][0] - r["begin"][0]) for r in gateways]
    gateway_cpu = sum(r["final"][1] - r["begin"][1] for r in gateways)
    return {
        "rates": rates,
        "ended": [e for out in outs for e in ended_early([o for o in out if o is not None])],
        "publications": publications,
        "gateway_cpu": statistics.mean(cpu) if cpu else 0.0,
        "us_per_summary": gateway_cpu / sent * 1e6 if sent else 0.0,
    }


def fanout_table(options: Options) -> Table:
    seconds = 5.0 if options.quick else 15.0
    repeats = 1 if options.quick else 3
    table = Table(
        "Fan-out over the bus: clients on two gateway processes",
        f"Simulated Binance + Bitstamp diff feeds at {FANOUT_RATE} frames/s in total; one "
        "`feed`+`aggregate` process publishing books to redis-server; two gateway processes "
        f"(`serve` over the bus, per-client cap {FANOUT_CAP:g} Summaries/s); clients in "
        "four processes, half on each gateway: *h2* (`benchmarks.h2client`, raw HTTP/2 "
        "streams in one trio process), *lean* (`benchmarks.leanclient`, the same streams on "
        "one epoll loop) or *grpcio* (a thread and a channel per client), "
        f"{seconds:g} s per run, {repeats} runs per case. Everything, the clients "
        "included, on the same two cores. *per client*: median of the runs' client medians "
        "(slowest-fastest client over all runs); *under 90 % of the cap*, *ended early* "
        "(streams a gateway ended before the stop, h2 and lean): per run; *gateway CPU*: share "
        "of a core each gateway process used; *CPU per Summary*: both gateways' CPU time "
        "per Summary the clients received.",
        [
            "clients",
            "client",
            "served",
            "per client updates/s",
            "under 90 % of the cap",
            "ended early",
            "aggregator publications/s",
            "gateway CPU",
            "gateway CPU µs per Summary",
        ],
    )
    for clients, kind in ((100, "grpcio"), (100, "h2"), (FANOUT_CLIENTS, "lean")):
        runs = [fanout_run(seconds, clients, kind) for _ in range(repeats)]
        rates = [r["rates"] for r in runs if r["rates"]]
        served = [sum(1 for x in r["rates"] if x > 0) for r in runs]
        table.rows.append(
            [
                f"{clients:,}",
                kind,
                spread(served),
                f"{statistics.median(statistics.median(r) for r in rates):,.1f} "
                f"({min(min(r) for r in rates):,.1f}-{max(max(r) for r in rates):,.1f})"
                if rates
                else "—",
                spread(
                    [
                        float(sum(1 for x in r["rates"] if x < fanout.SERVED * FANOUT_CAP))
                        for r in runs
                    ]
                ),
                spread([float(len(r["ended"])) for r in runs]) if kind != "grpcio" else "—",
                spread([r["publications"] for r in runs], ",.1f"),
                spread([r["gateway_cpu"] * 100 for r in runs], unit="%"),
                spread([r["us_per_summary"] for r in runs], ",.0f"),
            ]
        )
        print("  ", table.rows[-1], flush=True)
    return table


def run(options: Options) -> list[Table]:
    return [throughput_table(options), fanout_table(options)]


SUITE = Suite(
    name="roles",
    timing=(
        "- Timing: wall clock of each role process between its feeds going live and the "
        "replay's end (throughput), Summaries counted per client (fan-out); 3 runs (1 with "
        "`--quick`)"
    ),
    title="Roles over Redis: split feeds and fan-out over gateways",
    run=run,
    packages=("trio", "coredis", "wsproto", "grpcio", "h2", "msgspec"),
)
