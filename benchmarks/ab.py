"""One measurement for an A/B comparison of two source trees, printed as a JSON line.

``python -m benchmarks.ab latency``: one latency run at 5,000 frames/s.
``python -m benchmarks.ab in-service [SECONDS]``: one run of the in-service latency (frame
read → Summary bytes written, ``benchmarks.latency.in_service``) at 5,000 frames/s, with the
service's CPU share.
``python -m benchmarks.ab fanout CLIENTS [CAP]``: one ``benchmarks.fanout`` case with the
service CPU per delivered Summary. ``python -m benchmarks.ab throughput snapshot 2
[count]``: one end-to-end throughput
run (``benchmarks.throughput.one_run``); ``python -m benchmarks.ab parse`` the
in-process per-frame cost of a top-N snapshot protocol (Bitstamp ``order_book`` at 100
levels, Binance ``depth20``), read 10 deep as the feed reads it; ``parse-capture`` the
same on the end-to-end snapshot capture's frames. Run the same command
with ``PYTHONPATH=<other tree>/src`` in alternation (the machine is shared and loaded:
compare the minimum or median of many alternating runs, never one run).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import dragonflybot


def parse_costs(frames: int = 20_000) -> dict[str, Any]:
    from dragonflybot.venues.binance import BinanceProtocol
    from dragonflybot.venues.bitstamp import BitstampProtocol

    def side(base: int, step: int, levels: int, salt: int) -> str:
        return ",".join(
            f'["{(base + step * i) / 100:.2f}","{(i * 7 + salt) % 13 + 1}.{salt % 97:02d}"]'
            for i in range(levels)
        )

    out: dict[str, Any] = {"source": dragonflybot.__file__}
    cases: list[tuple[str, Any, list[str]]] = []
    bitstamp_frames = [
        '{"event":"data","channel":"order_book_ethbtc","data":{"timestamp":"1",'
        f'"microtimestamp":"{1_700_000_000_000_000 + k}","bids":[{side(19_000, -1, 100, k)}],'
        f'"asks":[{side(19_001, 1, 100, k)}]}}}}'
        for k in range(64)
    ]
    cases.append(
        ("bitstamp order_book 100", BitstampProtocol("ETH-BTC", mode="top"), bitstamp_frames)
    )
    binance_frames = [
        '{"stream":"ethbtc@depth20@100ms","data":{"lastUpdateId":1,'
        f'"bids":[{side(19_000, -1, 20, k)}],"asks":[{side(19_001, 1, 20, k)}]}}}}'
        for k in range(64)
    ]
    cases.append(
        ("binance depth20", BinanceProtocol("ETH-BTC", mode="top", levels=20), binance_frames)
    )
    for name, protocol, texts in cases:
        protocol.connection_made()
        read_depth = getattr(protocol, "read_depth", None)
        if read_depth is not None:
            read_depth(10)
        encoded = [t.encode() for t in texts]
        best = float("inf")
        for _ in range(7):
            receive = protocol.receive
            start = time.process_time()
            for i in range(frames):
                receive(encoded[i & 63])
            best = min(best, (time.process_time() - start) / frames * 1e6)
        out[name] = round(best, 3)
    return out


def fanout_cost(clients: int, cap: float, seconds: float = 8.0) -> dict[str, Any]:
    """One ``benchmarks.fanout`` case, with the service CPU per Summary delivered.

    ``cpu_us_per_summary``: service CPU seconds per second over the Summaries all clients
    received per second; between the 1- and the 100-client case its growth is what one
    more client costs per Summary (the aggregator's own work is shared by all of them).
    """
    from benchmarks.fanout import one

    result = one(clients, False, seconds, cap)
    delivered = sum(result["fast"])
    return {
        "clients": clients,
        "cap": cap,
        "per_client_median": sorted(result["fast"])[len(result["fast"]) // 2],
        "delivered_per_s": delivered,
        "publications_per_s": result["publications"],
        "cpu_share": result["cpu"],
        "cpu_us_per_summary": result["cpu"] / delivered * 1e6 if delivered else 0.0,
        "source": dragonflybot.__file__,
    }


def latency_5k(seconds: float = 10.0) -> dict[str, Any]:
    """One ``benchmarks.latency`` run at 5,000 frames/s: the total and the in-service leg."""
    from benchmarks.latency import one_rate

    hist, kept = one_rate(5_000, seconds)
    inside = sorted(h.in_service for h in kept)
    return {
        "timed": len(kept),
        "total_p50_us": hist.get_value_at_percentile(50) / 1000,
        "total_p99_us": hist.get_value_at_percentile(99) / 1000,
        "in_service_p50_us": inside[len(inside) // 2] / 1000 if inside else 0.0,
        "in_service_p99_us": inside[int(len(inside) * 0.99)] / 1000 if inside else 0.0,
        "source": dragonflybot.__file__,
    }


def in_service_5k(seconds: float = 10.0) -> dict[str, Any]:
    """One in-service latency run at 5,000 frames/s: percentiles and service CPU."""
    import os

    from benchmarks.latency import in_service_rate, percentile

    timed, cpu, per_frame, buffered = in_service_rate(5_000, seconds)
    ordered = sorted(v.total for v in timed)
    first = sorted(v.to_publish for v in timed)
    return {
        "timed": len(ordered),
        **{
            f"p{p:g}_us": percentile(ordered, p) / 1000 if ordered else 0.0
            for p in (50, 90, 99, 99.9)
        },
        "to_publish_p50_us": percentile(first, 50) / 1000 if first else 0.0,
        "to_publish_p99_us": percentile(first, 99) / 1000 if first else 0.0,
        "service_cpu": round(cpu, 4),
        "cpu_us_per_frame": round(per_frame, 2),
        "buffered_frames": round(buffered, 3),
        "load": os.getloadavg()[0],
        "source": dragonflybot.__file__,
    }


def main(argv: list[str]) -> None:
    if argv[0] == "in-service":
        print(json.dumps(in_service_5k(float(argv[1]) if len(argv) > 1 else 10.0)))
        return
    if argv[0] == "parse":
        print(json.dumps(parse_costs()))
        return
    if argv[0] == "parse-capture":
        from benchmarks.throughput import capture_parse_costs

        print(json.dumps({**capture_parse_costs(), "source": dragonflybot.__file__}))
        return
    if argv[0] == "latency":
        print(json.dumps(latency_5k()))
        return
    if argv[0] == "fanout":
        print(json.dumps(fanout_cost(int(argv[1]), float(argv[2]) if len(argv) > 2 else 0.0)))
        return
    from benchmarks import rig
    from benchmarks.throughput import captures, one_run, start_replay

    mode, venues = argv[1], argv[2]
    count = int(argv[3]) if len(argv) > 3 else 150_000
    paths = captures(mode, count)  # type: ignore[arg-type]
    sim, endpoints = start_replay(paths)
    try:
        sim_cpu = rig.cpu_seconds(sim.pid)
        result = one_run(endpoints, venues, mode, count)
        # The simulator's CPU per frame served (its idle settle time costs nothing).
        sim_us = (rig.cpu_seconds(sim.pid) - sim_cpu) / result["frames"] * 1e6
    finally:
        rig.stop(sim)
    load = os.getloadavg()[0]
    print(
        json.dumps({**result, "sim_cpu_us": sim_us, "load": load, "source": dragonflybot.__file__})
    )


if __name__ == "__main__":
    main(sys.argv[1:])
