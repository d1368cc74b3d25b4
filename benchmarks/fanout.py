"""Fan-out: 1, 10 and 100 grpcio clients of one book, and a slow client beside fast ones.

The service (one core) follows Binance + Bitstamp simulated diff feeds; every client is a
thread with its own channel (own TCP connection), spread over two client processes on the
other core. Per client: Summaries received per second between its first and last one.
The aggregator's publications per second are reported beside them: a fan-out that held the
aggregator back would show there (each stream reads its own conflating slot, so it cannot).
The slow client sleeps 20 ms after each Summary (so at most 50/s) while ten fast ones read.
The last case runs the 100 clients with the service's per-stream cap (``max_client_rate``).
"""

from __future__ import annotations

import statistics
from typing import Any, Final

from benchmarks import rig
from benchmarks.harness import Options, Suite, Table, spread

RATE: Final = 1_000
"""Venue frames per second in total (half per venue)."""
SLOW_DELAY: Final = 0.02
CAP: Final = 120.0
"""Summaries per second per stream in the capped case: above the 100/s each client needs."""


def per_client(out: list[Any]) -> list[float]:
    rates = []
    for count, first, last in out:
        rates.append((count - 1) / ((last - first) / 1e9) if count > 1 and last > first else 0.0)
    return rates


def one(clients: int, slow: bool, seconds: float, cap: float = 0.0) -> dict[str, Any]:
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
        result, outs = rig.run_pipeline(plan, groups, max_seconds=seconds, max_client_rate=cap)
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
    }


def run(options: Options) -> list[Table]:
    seconds = 4.0 if options.quick else 15.0
    repeats = 1 if options.quick else 3
    table = Table(
        "Fan-out, Summaries per second per client",
        f"{RATE:,} venue frames/s (Binance + Bitstamp diff, simulated), {seconds:g} s per "
        f"run, {repeats} runs per case. *per client*: median of the runs' client medians "
        "(slowest-fastest client over all runs); *slow client*, *aggregator* "
        "(publications/s) and *service CPU* (share of its one core): median (min-max) of "
        "the runs.",
        [
            "clients",
            "per client updates/s",
            "slow client updates/s",
            "aggregator publications/s",
            "service CPU",
        ],
    )
    cases = (
        (1, False, 0.0),
        (10, False, 0.0),
        (100, False, 0.0),
        (10, True, 0.0),
        (100, False, CAP),
    )
    for clients, slow, cap in cases:
        runs = [one(clients, slow, seconds, cap) for _ in range(repeats)]
        fast = [r["fast"] for r in runs if r["fast"]]
        cell = (
            f"{statistics.median(statistics.median(f) for f in fast):,.0f} "
            f"({min(min(f) for f in fast):,.0f}-{max(max(f) for f in fast):,.0f})"
            if fast
            else "—"
        )
        slow_rates = [r["slow"] for r in runs if r["slow"] is not None]
        table.rows.append(
            [
                f"{clients}"
                + (" fast + 1 slow" if slow else "")
                + (f", capped at {cap:g}/s" if cap else ""),
                cell,
                spread(slow_rates) if slow_rates else "—",
                spread([r["publications"] for r in runs]),
                spread([r["cpu"] * 100 for r in runs], unit="%"),
            ]
        )
        print("  ", table.rows[-1], flush=True)
    return [table]


SUITE = Suite(
    name="fanout",
    timing=(
        "- Timing: Summaries counted by each client between its first and last; 3 runs per "
        "case (1 with `--quick`)"
    ),
    title="End to end: fan-out",
    run=run,
    packages=("trio", "purerpc", "grpcio"),
)
