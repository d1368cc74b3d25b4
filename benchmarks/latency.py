"""End-to-end latency: venue send → grpcio receive of the Summary that first reflects it.

The simulator (``stamp_send_time``) adds ``"T_send_ns"`` (``time.time_ns()`` taken as the
frame is written) to every data payload; the Summary has no room for it, so the service
process traces instead (``benchmarks.rig.service_child`` with ``trace``): each frame is
logged with its ``monotonic_ns`` as it leaves the WebSocket, and each published state
with its ``newest_recv_ns`` (the receive time of the newest frame merged into it) and its
encoded bytes. The grpcio client logs ``time.time_ns()`` and the raw bytes of every
Summary it receives. Afterwards each received Summary is matched to its published state by
its bytes (states in order, the client's a subsequence of them) and each state to the frame
whose receive time it carries; latency = client receive time minus that frame's ``T_send_ns``
(one machine, one wall clock). Frames that changed nothing in the top 10 produce no Summary
and are not counted; under conflation a Summary counts once, for the newest frame in it.
"""

from __future__ import annotations

import bisect
import statistics
from typing import Any, Final

from hdrh.histogram import HdrHistogram

from benchmarks import rig
from benchmarks.harness import Options, Suite, Table

RATES: Final = (1_000, 5_000, 20_000)
WARMUP_NS: Final = 500_000_000


def latencies(result: dict[str, Any], received: list[tuple[int, bytes]]) -> list[int]:
    frames: list[tuple[int, int | None]] = result["frames"]
    times = [t for t, _ in frames]
    states: list[tuple[int, int | None, bytes]] = result["states"]
    out: list[int] = []
    j = 0
    for recv_ns, body in received:
        while j < len(states) and states[j][2] != body:
            j += 1
        if j == len(states):
            break
        newest = states[j][1]
        if newest is not None:
            k = bisect.bisect_right(times, newest) - 1
            if k >= 0 and frames[k][1] is not None:
                out.append(recv_ns - frames[k][1])  # type: ignore[operator]
        j += 1
    return out


def one_rate(rate: int, seconds: float) -> tuple[HdrHistogram, int, int]:
    sim, endpoints = rig.start_sim(
        venues=("binance", "bitstamp"),
        instruments=("ethbtc",),
        rate=rate / 2,
        stamp_send_time=True,
        ws_backend="wsproto",
    )
    try:
        port = rig.free_port()
        plan: rig.Plan = [
            ("ethbtc", port, [(v, "diff", *endpoints[v]) for v in ("binance", "bitstamp")])
        ]
        result, outs = rig.run_pipeline(
            plan, [([f"127.0.0.1:{port}"], True, 0.0)], trace=True, max_seconds=seconds
        )
    finally:
        rig.stop(sim)
    received: list[tuple[int, bytes]] = outs[0][0] if outs and outs[0] else []
    values = latencies(result, received)
    start = received[0][0] + WARMUP_NS if received else 0
    kept = [v for v, (t, _) in zip(values, received, strict=False) if t >= start]
    hist = HdrHistogram(1, 10_000_000_000, 3)
    for v in kept:
        hist.record_value(max(1, v))
    frames = len(result["frames"])
    return hist, len(kept), frames


def run(options: Options) -> list[Table]:
    seconds = 4.0 if options.quick else 20.0
    table = Table(
        "Latency, venue send → grpcio receive",
        f"Binance + Bitstamp diff feeds (simulated, half the rate each) for {seconds:g} s per "
        "rate, the first 0.5 s dropped; one grpcio client; service pinned to one core. "
        "Microseconds, from an HDR histogram (3 significant digits).",
        ["venue frames/s", "Summaries timed", "p50", "p90", "p99", "p99.9", "max"],
    )
    for rate in RATES:
        hist, count, _ = one_rate(rate, seconds)
        if not count:
            table.rows.append([f"{rate:,}", "0", "—", "—", "—", "—", "—"])
            continue
        q = [hist.get_value_at_percentile(p) / 1e3 for p in (50, 90, 99, 99.9)]
        table.rows.append(
            [
                f"{rate:,}",
                f"{count:,}",
                *(f"{v:,.0f}" for v in q),
                f"{hist.get_max_value() / 1e3:,.0f}",
            ]
        )
        print("  ", table.rows[-1], flush=True)
    return [table]


def _median(values: list[float]) -> float:
    return statistics.median(values)


SUITE = Suite(
    name="latency",
    timing=(
        "- Timing: `time.time_ns` at the simulator's send and at the grpcio client's "
        "receive, one run per rate"
    ),
    title="End to end: latency",
    run=run,
    packages=("trio", "wsproto", "purerpc", "grpcio", "hdrhistogram"),
)
