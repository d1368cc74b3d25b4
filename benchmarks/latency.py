"""End-to-end latency: venue send → client receive of the Summary that first reflects it.

The simulator (``stamp_send_time``) adds ``"T_send_ns"`` (``time.time_ns()`` taken as the
frame is written) to every data payload; the Summary has no room for it, so the service
process traces instead (``benchmarks.rig.service_child`` with ``trace``): each frame is
logged with its ``monotonic_ns`` as it leaves the WebSocket, and each published state
with its ``newest_recv_ns`` (the receive time of the newest frame merged into it) and its
encoded bytes. The client logs ``time.time_ns()`` and the raw bytes of every Summary it
receives. Two clients, measured in turn at each rate: grpcio (its C core reads the
socket, its Python thread gets the message: one thread hop more) and the raw HTTP/2
client (``benchmarks.h2client``: the stamp is taken as the socket read returns, h2 and
the gRPC framing are parsed after it). Afterwards each received Summary is matched to
its published state by its bytes (states in order, the client's a subsequence of them)
and each state to the frame whose receive time it carries; latency = client receive
time minus that frame's ``T_send_ns`` (one machine, one wall clock). Frames that changed
nothing in the top 10 produce no Summary and are not counted; under conflation a
Summary counts once, for the newest frame in it.
"""

from __future__ import annotations

import bisect
import statistics
from typing import Any, Final, NamedTuple

from hdrh.histogram import HdrHistogram

from benchmarks import h2client, rig
from benchmarks.harness import Options, Suite, Table, spread

RATES: Final = (1_000, 5_000, 20_000)
CLIENTS: Final = {"grpcio": rig.client_child, "h2": h2client.client_child}
WARMUP_NS: Final = 500_000_000


class Hops(NamedTuple):
    """One timed Summary, in nanoseconds: the total and the three legs that make it up."""

    total: int
    to_service: int
    """Venue send → the frame leaves the service's WebSocket client (wire, kernel, wake-up)."""
    in_service: int
    """→ the aggregator publishes the state (reader, listener, aggregator steps)."""
    to_client: int
    """→ the client has it (stream and writer steps, socket, the client's read)."""


def latencies(result: dict[str, Any], received: list[tuple[int, bytes]]) -> list[Hops]:
    frames: list[tuple[int, int | None]] = result["frames"]
    times = [t for t, _ in frames]
    states: list[tuple[int, int | None, bytes, int]] = result["states"]
    offset: int = result["clock_offset_ns"]
    out: list[Hops] = []
    j = 0
    for recv_ns, body in received:
        while j < len(states) and states[j][2] != body:
            j += 1
        if j == len(states):
            break
        newest, published = states[j][1], states[j][3]
        if newest is not None:
            k = bisect.bisect_right(times, newest) - 1
            sent = frames[k][1] if k >= 0 else None
            if sent is not None:
                out.append(
                    Hops(
                        recv_ns - sent,
                        frames[k][0] + offset - sent,
                        published - frames[k][0],
                        recv_ns - (published + offset),
                    )
                )
        j += 1
    return out


def one_rate(rate: int, seconds: float, kind: str = "grpcio") -> tuple[HdrHistogram, list[Hops]]:
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
            ("ethbtc", port, [(v, "depth", *endpoints[v]) for v in ("binance", "bitstamp")])
        ]
        result, outs = rig.run_pipeline(
            plan,
            [([f"127.0.0.1:{port}"], True, 0.0)],
            trace=True,
            max_seconds=seconds,
            client=CLIENTS[kind],
        )
    finally:
        rig.stop(sim)
    received: list[tuple[int, bytes]] = outs[0][0] if outs and outs[0] else []
    values = latencies(result, received)
    start = received[0][0] + WARMUP_NS if received else 0
    kept = [v for v, (t, _) in zip(values, received, strict=False) if t >= start]
    hist = HdrHistogram(1, 10_000_000_000, 3)
    for v in kept:
        hist.record_value(max(1, v.total))
    return hist, kept


def run(options: Options) -> list[Table]:
    seconds = 4.0 if options.quick else 20.0
    repeats = 1 if options.quick else 3
    table = Table(
        "Latency, venue send → client receive",
        f"Binance + Bitstamp diff feeds (simulated, half the rate each) for {seconds:g} s per "
        "run, the first 0.5 s dropped; one client: *grpcio* (a channel and a thread) or "
        "*h2* (`benchmarks.h2client`, raw HTTP/2 on a trio socket), the two alternating "
        "run by run; service pinned to one core. Microseconds, each run's from an HDR "
        f"histogram (3 significant digits); median (min-max) over {repeats} runs per rate "
        "and client.",
        ["venue frames/s", "client", "Summaries timed", "p50", "p90", "p99", "p99.9", "max"],
    )
    legs = Table(
        "Where the time goes, per leg",
        "The same Summaries split at two points the service stamps: the frame leaving its "
        "WebSocket client (the feed's `connect` seam) and the aggregator's publication of the "
        "state. *to the service*: the simulator's write, the loopback, the wake-up of the "
        "service's core and the socket read; *in the service*: reader, listener and "
        "aggregator steps; *to the client*: the stream and writer steps, the socket "
        "write and the client (grpcio: its C core and its Python thread; h2: its socket "
        "read). Median and p99 in microseconds, over the Summaries of all runs of the rate.",
        ["venue frames/s", "client", "to the service", "in the service", "to the client", "total"],
    )
    for rate in RATES:
        runs: dict[str, list[list[float]]] = {kind: [] for kind in CLIENTS}
        pooled: dict[str, list[Hops]] = {kind: [] for kind in CLIENTS}
        for _ in range(repeats):
            for kind in CLIENTS:  # alternating: the machine's load hits both alike
                hist, kept = one_rate(rate, seconds, kind)
                if not kept:
                    continue
                pooled[kind] += kept
                runs[kind].append(
                    [
                        float(len(kept)),
                        *(hist.get_value_at_percentile(p) / 1e3 for p in (50, 90, 99, 99.9)),
                        hist.get_max_value() / 1e3,
                    ]
                )
        for kind in CLIENTS:
            if not runs[kind]:
                table.rows.append([f"{rate:,}", kind, "0", "—", "—", "—", "—", "—"])
                legs.rows.append([f"{rate:,}", kind, "—", "—", "—", "—"])
                continue
            table.rows.append(
                [f"{rate:,}", kind, *(spread([r[i] for r in runs[kind]]) for i in range(6))]
            )
            legs.rows.append(
                [
                    f"{rate:,}",
                    kind,
                    *(
                        _p50_p99([getattr(h, leg) for h in pooled[kind]])
                        for leg in Hops._fields[1:]
                    ),
                    _p50_p99([h.total for h in pooled[kind]]),
                ]
            )
            print("  ", table.rows[-1], legs.rows[-1], flush=True)
    return [table, legs]


def _p50_p99(values: list[int]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) / 1e3:,.0f} / {p99 / 1e3:,.0f}"


SUITE = Suite(
    name="latency",
    timing=(
        "- Timing: `time.time_ns` at the simulator's send and at the client's receive "
        "(grpcio's thread; the h2 client's socket read); median (min-max) of 3 runs per "
        "rate and client (1 with `--quick`)"
    ),
    title="End to end: latency",
    run=run,
    packages=("trio", "wsproto", "purerpc", "grpcio", "h2", "hdrhistogram"),
)
