"""Fan-out: 1, 10, 100 and 1,000 clients of one book, and a slow client beside fast ones.

The service (one core) follows Binance + Bitstamp simulated diff feeds; its clients are
in two client processes on the other core, each client with its own connection, of two
kinds: grpcio (a thread and a channel per client; ``rig.client_child``) and the raw
HTTP/2 client (``benchmarks.h2client``: one trio process holding many h2 connections,
no threads) and, for 1,000 clients, ``benchmarks.leanclient`` (the same streams read by one
epoll loop, h2 off the per-message path). Per client: Summaries received per second
between its first and last one.
The aggregator's publications per second are reported beside them: a fan-out that held
the aggregator back would show there (each stream reads its own conflating slot). The
slow client reads one Summary per 20 ms (so at most 50/s) while ten fast ones read. The
capped cases run with the service's per-stream cap (``max_client_rate``); for those the
table also says how many clients got less than 90 % of the cap, and how many streams the
server ended before the stop (GOAWAY, RST_STREAM, a status: the h2 client records which).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Final

from benchmarks import h2client, leanclient, rig
from benchmarks.harness import Options, Suite, Table, spread

RATE: Final = 1_000
"""Venue frames per second in total (half per venue)."""
SLOW_DELAY: Final = 0.02
CAP: Final = 120.0
"""Summaries per second per stream in the capped case: above the 100/s each client needs."""
MANY_CAP: Final = 20.0
"""The issue's case: 1,000 clients capped at 20 updates/s, all served on one core."""
SERVED: Final = 0.9
"""A capped client counts as served at >= 90 % of the cap."""
CLIENTS: Final = {
    "grpcio": rig.client_child,
    "h2": h2client.client_child,
    "lean": leanclient.client_child,
}
"""Client kinds: ``lean`` (``benchmarks.leanclient``, one epoll loop) reads the 1,000-client
case; ``h2`` (a trio task per connection) costs too much client CPU per message there."""


def per_client(out: list[Any]) -> list[float]:
    rates = []
    for count, first, last, *_ in out:
        rates.append((count - 1) / ((last - first) / 1e9) if count > 1 and last > first else 0.0)
    return rates


SHUTDOWN: Final = "grpc-status 14 'server is shutting down'"
"""How every stream ends when the rig's service shuts down after its measurement, which
can come before the parent's "stop" reaches the clients: not an early end."""


def ended_early(out: list[Any]) -> list[str]:
    """How the h2 client's streams that ended before the stop ended (grpcio: not known)."""
    return [o[3] for o in out if len(o) > 3 and o[3] not in ("open", SHUTDOWN)]


class RunQueue:
    """The service's time waiting for a core (``/proc/PID/schedstat``), as a share of the
    run: on a shared machine its per-client rates mean little when this is high."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []

    def __call__(self, pid: int) -> None:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                waited = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            return
        self.samples.append((time.monotonic(), waited))

    @property
    def share(self) -> float:
        if len(self.samples) < 2:
            return float("nan")
        (t0, w0), (t1, w1) = self.samples[0], self.samples[-1]
        return (w1 - w0) / 1e9 / (t1 - t0) if t1 > t0 else float("nan")


def one(
    clients: int, slow: bool, seconds: float, cap: float = 0.0, kind: str = "grpcio"
) -> dict[str, Any]:
    sim, endpoints = rig.start_sim(
        venues=("binance", "bitstamp"), instruments=("ethbtc",), rate=RATE / 2, ws_backend="wsproto"
    )
    try:
        port = rig.free_port()
        target = f"127.0.0.1:{port}"
        plan: rig.Plan = [
            ("ethbtc", port, [(v, "depth", *endpoints[v]) for v in ("binance", "bitstamp")])
        ]
        half = clients // 2
        groups = [([target] * half, False, 0.0), ([target] * (clients - half), False, 0.0)]
        groups = [g for g in groups if g[0]]
        if slow:
            groups.append(([target], False, SLOW_DELAY))
        waits = RunQueue()
        result, outs = rig.run_pipeline(
            plan,
            groups,
            max_seconds=seconds,
            max_client_rate=cap,
            client=CLIENTS[kind],
            monitor=waits,
        )
    finally:
        rig.stop(sim)
    samples = result["samples"]
    elapsed = samples[-1][0] - samples[0][0]
    fast = [r for out in (outs[:-1] if slow else outs) for r in per_client(out)]
    return {
        "fast": fast,
        "slow": per_client(outs[-1])[0] if slow else None,
        "publications": result["publications"] / elapsed if elapsed > 0 else 0.0,
        "cpu": (samples[-1][1] - samples[0][1]) / elapsed if elapsed > 0 else 0.0,
        "ended": [e for out in outs for e in ended_early(out)],
        "waited": waits.share,
    }


def run(options: Options) -> list[Table]:
    seconds = 4.0 if options.quick else 15.0
    repeats = 1 if options.quick else 3
    table = Table(
        "Fan-out, Summaries per second per client",
        f"{RATE:,} venue frames/s (Binance + Bitstamp diff, simulated), {seconds:g} s per "
        f"run, {repeats} runs per case; clients in two processes on the second core "
        "(*grpcio*: a thread and a channel each; *h2*: `benchmarks.h2client`, raw HTTP/2 "
        "connections in one trio process; *lean*: `benchmarks.leanclient`, the same in one "
        "epoll loop). *per client*: median of the runs' client "
        "medians (slowest-fastest client over all runs); *under 90 % of the cap*: clients "
        "below 0.9 x the cap, per run; *ended early*: streams the server ended before the "
        "stop, per run (h2 and lean); *slow client*, *aggregator* (publications/s) and "
        "*service CPU* (share of its one core), *CPU µs per Summary* (that share over "
        "the Summaries per second all fast clients received: feeds and merge included), "
        "*service waited* (its main thread's "
        "time runnable but waiting for the core, `/proc/PID/schedstat`: other load on the "
        "machine): median (min-max) of the runs.",
        [
            "clients",
            "client",
            "per client updates/s",
            "under 90 % of the cap",
            "ended early",
            "slow client updates/s",
            "aggregator publications/s",
            "service CPU",
            "service CPU µs per Summary",
            "service waited",
        ],
    )
    cases = [
        (clients, slow, cap, kind)
        for clients, slow, cap in (
            (1, False, 0.0),
            (10, False, 0.0),
            (100, False, 0.0),
            (10, True, 0.0),
            (100, False, CAP),
            (1_000, False, MANY_CAP),
        )
        for kind in (
            ("lean",)
            if clients >= 1_000
            else ("grpcio", "h2", "lean")
            if clients in (1, 100) and not slow and not cap
            else ("grpcio", "h2")
        )
    ]
    for clients, slow, cap, kind in cases:
        runs = [one(clients, slow, seconds, cap, kind) for _ in range(repeats)]
        table.rows.append(row(clients, slow, cap, kind, runs))
        print("  ", table.rows[-1], flush=True)
    return [table]


def row(clients: int, slow: bool, cap: float, kind: str, runs: list[dict[str, Any]]) -> list[str]:
    fast = [r["fast"] for r in runs if r["fast"]]
    cell = (
        f"{statistics.median(statistics.median(f) for f in fast):,.1f} "
        f"({min(min(f) for f in fast):,.1f}-{max(max(f) for f in fast):,.1f})"
        if fast
        else "—"
    )
    under = (
        spread([float(sum(1 for x in r["fast"] if x < SERVED * cap)) for r in runs]) if cap else "—"
    )
    ended = spread([float(len(r["ended"])) for r in runs]) if kind != "grpcio" else "—"
    slow_rates = [r["slow"] for r in runs if r["slow"] is not None]
    return [
        f"{clients:,}"
        + (" fast + 1 slow" if slow else "")
        + (f", capped at {cap:g}/s" if cap else ""),
        kind,
        cell,
        under,
        ended,
        spread(slow_rates) if slow_rates else "—",
        spread([r["publications"] for r in runs]),
        spread([r["cpu"] * 100 for r in runs], unit="%"),
        spread([r["cpu"] / sum(r["fast"]) * 1e6 if sum(r["fast"]) else 0.0 for r in runs]),
        spread([r["waited"] * 100 for r in runs], unit="%"),
    ]


SUITE = Suite(
    name="fanout",
    timing=(
        "- Timing: Summaries counted by each client between its first and last; 3 runs per "
        "case (1 with `--quick`)"
    ),
    title="End to end: fan-out",
    run=run,
    packages=("trio", "purerpc", "grpcio", "h2"),
)
