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
    """Venue send → the service's socket read that brought the frame (wire, kernel, wake-up)."""
    in_service: int
    """→ the aggregator publishes the state (read loop and aggregator steps)."""
    to_client: int
    """→ the client has it (stream and writer steps, socket, the client's read)."""


def latencies(result: dict[str, Any], received: list[tuple[int, bytes]]) -> list[Hops]:
    frames: list[tuple[int, int | None]] = result["frames"]
    times = [t for t, _ in frames]
    # The legs split at the socket read that brought the frame (``rig._TracingStream``):
    # a frame handed out of the client's buffer later waited in the service meanwhile.
    reads: list[int] = result.get("reads") or times
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
                        reads[k] + offset - sent,
                        published - reads[k],
                        recv_ns - (published + offset),
                    )
                )
        j += 1
    return out


def traced_run(
    rate: int, seconds: float, record: bool, client: Any = rig.client_child
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Binance + Bitstamp diff feeds at ``rate`` frames/s in all, send-stamped, through a
    traced service to one client: what ``rig.run_pipeline`` reports."""
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
        return rig.run_pipeline(
            plan,
            [([f"127.0.0.1:{port}"], record, 0.0)],
            trace=True,
            max_seconds=seconds,
            client=client,
        )
    finally:
        rig.stop(sim)


def one_rate(rate: int, seconds: float, kind: str = "grpcio") -> tuple[HdrHistogram, list[Hops]]:
    result, outs = traced_run(rate, seconds, True, CLIENTS[kind])
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
        "The same Summaries split at two points the service stamps: the socket read that "
        "brought the frame (the feed's `connect` seam) and the aggregator's publication of the "
        "state. *to the service*: the simulator's write, the loopback, the wake-up of the "
        "service's core and the socket read; *in the service*: the read loop (frames of one "
        "socket read applied in turn) and the aggregator step; *to the client*: the stream "
        "and writer steps, the socket write and the client (grpcio: its C core and its "
        "Python thread; h2: its socket read). Median and p99 in microseconds, over the "
        "Summaries of all runs of the rate.",
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


# --- in the service: frame read from the socket → Summary bytes written to the client socket ---


def grpc_messages(writes: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The gRPC messages a server wrote on one connection, each with the stamp of the write
    that carried its last byte: HTTP/2 frames parsed from the concatenated writes (so a
    message split across DATA frames or writes is still found), then the 5-byte gRPC
    length prefix out of each stream's DATA payloads."""
    out: list[tuple[int, bytes]] = []
    buffer = bytearray()
    pending: dict[int, bytearray] = {}
    pos = 0
    for stamp, chunk in writes:
        buffer += chunk
        while len(buffer) - pos >= 9:
            length = int.from_bytes(buffer[pos : pos + 3], "big")
            if len(buffer) - pos < 9 + length:
                break
            kind, flags = buffer[pos + 3], buffer[pos + 4]
            stream = int.from_bytes(buffer[pos + 5 : pos + 9], "big") & 0x7FFF_FFFF
            payload = bytes(buffer[pos + 9 : pos + 9 + length])
            pos += 9 + length
            if kind != 0:  # not DATA
                continue
            if flags & 0x08:  # PADDED
                payload = payload[1 : len(payload) - payload[0]]
            data = pending.setdefault(stream, bytearray())
            data += payload
            while len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
                size = int.from_bytes(data[1:5], "big")
                out.append((stamp, bytes(data[5 : 5 + size])))
                del data[: 5 + size]
        del buffer[:pos]
        pos = 0
    return out


class InService(NamedTuple):
    """One Summary written to a client, in ``time.monotonic_ns`` of the service process."""

    written: int
    """When the write that put its last byte into the client's socket returned."""
    total: int
    """The newest venue frame merged into it read from the socket → written."""
    to_publish: int
    """→ the aggregator published its state (the feed and aggregator part of ``total``)."""


def in_service(result: dict[str, Any]) -> list[InService]:
    """An ``InService`` per Summary written to a client: from the socket read that brought
    the newest venue frame merged into its state (the feed's ``connect`` seam,
    ``rig._TracingStream``) to the write that
    put its last byte into the client's socket (``GrpcServer.wrap_accepted``); both stamped
    with ``time.monotonic_ns`` in the service process. A state skipped by conflation has no
    write and is not counted; a Summary written to several clients counts once per client."""
    times = [t for t, _ in result["frames"]]
    reads: list[int] = result["reads"]
    states: list[tuple[int, int | None, bytes, int]] = result["states"]
    where: dict[bytes, list[int]] = {}
    for index, state in enumerate(states):
        where.setdefault(state[2], []).append(index)
    out: list[InService] = []
    for writes in result["writes"]:
        last = -1
        for written, body in grpc_messages(writes):
            indices = where.get(body)
            if not indices:
                continue
            i = bisect.bisect_right(indices, last)
            if i == len(indices):
                continue
            last = indices[i]
            newest, published = states[last][1], states[last][3]
            if newest is None:
                continue
            k = bisect.bisect_right(times, newest) - 1
            if k >= 0:
                out.append(InService(written, written - reads[k], published - reads[k]))
    return out


IN_SERVICE_RATES: Final = (5_000,)


def in_service_rate(rate: int, seconds: float) -> tuple[list[InService], float, float, float]:
    """One run: the timed Summaries (warm-up dropped), the service's CPU share, its CPU
    microseconds per venue frame and the share of frames that came in a socket read with
    an earlier one."""
    result, _ = traced_run(rate, seconds, False)
    timed = in_service(result)
    start = timed[0].written + WARMUP_NS if timed else 0
    (t0, c0, f0), _, (t1, c1, f1) = result["samples"]
    cpu = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
    per_frame = (c1 - c0) / (f1 - f0) * 1e6 if f1 > f0 else 0.0
    buffered = sum(r != t for r, (t, _) in zip(result["reads"], result["frames"], strict=True))
    share = buffered / len(result["reads"]) if result["reads"] else 0.0
    return [v for v in timed if v.written >= start], cpu, per_frame, share


def percentile(ordered: list[int], p: float) -> int:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_in_service(options: Options) -> list[Table]:
    seconds = 4.0 if options.quick else 20.0
    repeats = 1 if options.quick else 3
    table = Table(
        "Latency inside the service, venue frame read → Summary bytes written",
        f"Binance + Bitstamp diff feeds (simulated, half the rate each) for {seconds:g} s per "
        "run, the first 0.5 s dropped; one grpcio client; service pinned to one core. Stamped "
        "in the service process with `time.monotonic_ns`: at the socket read that brought the "
        "frame (`run_feed`'s `connect` seam; a frame that came in one read with earlier ones "
        "keeps that read's time) and after the write that put the Summary's last "
        "byte into the client's socket (`GrpcServer.wrap_accepted`). Microseconds; median "
        f"(min-max) over {repeats} runs per rate.",
        [
            "venue frames/s",
            "Summaries timed",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "of it to the publication p50 / p99",
            "service CPU µs/frame",
        ],
    )
    for rate in IN_SERVICE_RATES:
        runs: list[list[float]] = []
        for _ in range(repeats):
            timed, _, per_frame, _ = in_service_rate(rate, seconds)
            if not timed:
                continue
            ordered = sorted(v.total for v in timed)
            first = sorted(v.to_publish for v in timed)
            runs.append(
                [
                    float(len(ordered)),
                    *(percentile(ordered, p) / 1e3 for p in (50, 90, 99, 99.9)),
                    percentile(first, 50) / 1e3,
                    percentile(first, 99) / 1e3,
                    per_frame,
                ]
            )
        if not runs:
            table.rows.append([f"{rate:,}", "0", "—", "—", "—", "—", "—", "—"])
            continue
        table.rows.append(
            [
                f"{rate:,}",
                *(spread([r[i] for r in runs]) for i in range(5)),
                f"{spread([r[5] for r in runs])} / {spread([r[6] for r in runs])}",
                spread([r[7] for r in runs], ".1f"),
            ]
        )
        print("  ", table.rows[-1], flush=True)
    return [table]


IN_SERVICE_SUITE = Suite(
    name="latency-in-service",
    timing=(
        "- Timing: `time.monotonic_ns` in the service process, at the frame's read and at the "
        "Summary's write; median (min-max) of 3 runs per rate (1 with `--quick`)"
    ),
    title="In the service: latency",
    run=run_in_service,
    packages=("trio", "wsproto", "purerpc"),
)
