"""Memory soak: the service's RSS over a long run at 5 k venue frames/s must stay flat.

Binance + Bitstamp simulated diff feeds at 2.5 k frames/s each, one grpcio client; the
service process's resident set size is read from ``/proc/<pid>/statm`` once a second. The
slope is a least-squares fit over the samples after the first tenth of the run (start-up
allocations, caches filling); the slope of the second half alone is shown beside it, so
growth that levels off (bounded caches filling) is told apart from a steady leak. 10 minutes
in the full run (``--only soak``), 30 s quick.
"""

from __future__ import annotations

from typing import Final

from benchmarks import rig
from benchmarks.harness import Options, Suite, Table

RATE: Final = 5_000


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    cov = sum((t - mx) * (v - my) for t, v in points)
    return cov / var * 60 if var else 0.0


def run(options: Options) -> list[Table]:
    import time

    seconds = options.soak_seconds or (30.0 if options.quick else 600.0)
    sim, endpoints = rig.start_sim(
        venues=("binance", "bitstamp"), instruments=("ethbtc",), rate=RATE / 2, ws_backend="wsproto"
    )
    points: list[tuple[float, float]] = []
    began = time.monotonic()

    def sample(pid: int) -> None:
        points.append((time.monotonic() - began, rig.rss_mib(pid)))

    try:
        port = rig.free_port()
        plan: rig.Plan = [
            ("ethbtc", port, [(v, "depth", *endpoints[v]) for v in ("binance", "bitstamp")])
        ]
        result, _ = rig.run_pipeline(
            plan, [([f"127.0.0.1:{port}"], False, 0.0)], max_seconds=seconds, monitor=sample
        )
    finally:
        rig.stop(sim)
    samples = result["samples"]
    frames = samples[-1][2] - samples[0][2]
    elapsed = samples[-1][0] - samples[0][0]
    kept = points[len(points) // 10 :]
    table = Table(
        "Service RSS over the soak",
        f"{RATE:,} venue frames/s requested for {seconds:g} s; {len(points)} RSS samples, the "
        "first tenth left out of the fit.",
        [
            "duration",
            "frames consumed/s",
            "RSS first",
            "RSS last",
            "RSS max",
            "slope",
            "slope, second half",
        ],
    )
    table.rows.append(
        [
            f"{elapsed:,.0f} s",
            f"{frames / elapsed:,.0f}" if elapsed else "—",
            f"{kept[0][1]:.1f} MiB",
            f"{kept[-1][1]:.1f} MiB",
            f"{max(v for _, v in points):.1f} MiB",
            f"{slope_per_minute(kept):+.3f} MiB/min",
            f"{slope_per_minute(points[len(points) // 2 :]):+.3f} MiB/min",
        ]
    )
    return [table]


SUITE = Suite(
    name="soak",
    timing=("- Timing: RSS from `/proc/PID/statm` once a second; slope by least squares"),
    title="End to end: memory soak",
    run=run,
    packages=("trio", "purerpc", "grpcio"),
    long=True,
)
