"""What a gateway's ladder costs per venue view it ingests, beside the aggregator's merge.

    .venv/bin/python -m benchmarks.ladder_ingest [--views N] [--runs R]

A gateway that serves an instrument's ladder reads the venue views from the bus
(docs/scaling.md, "The ladder and FIX on a gateway"). Past the bus subscriber
(measured by ``benchmarks.bus``), each view costs the ``ViewGate`` (liveness,
conversion to a ``VenueView``) and one ``LiquidityAggregator`` step (table update
and ladder build over every live venue). This measures that CPU per view, with
no I/O, for 2, 10 and 50 venues at depth 10, one view per batch (an idle
gateway: a build per view) and 16 (under load the aggregator takes every view
queued and builds once), and
beside it the aggregate role's step for the same views (``ViewGate`` +
``Aggregator``: the merge), which each view costs in an aggregator anyway.
CPU time (``time.process_time``), so other work on the machine changes the
wall time, not the figure; median and range of ``--runs``. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from dragonflybot.aggregator.aggregator import Aggregator
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.liquidity import LiquidityAggregator, LiquidityState
from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.codec import BusMessage, ViewMsg, wire_levels
from dragonflybot.bus.ingest import ViewGate
from dragonflybot.bus.subjects import view_subject
from dragonflybot.bus.subscriber import Received
from dragonflybot.core.fixed import ONE
from dragonflybot.core.view import VenueUpdate

INSTRUMENT = "BTC-USDT"
DEPTH = 10
TICK = ONE // 100
VENUE_COUNTS = (2, 10, 50)
BATCHES = (1, 16)


def side(rng: random.Random, best: int, tick: int) -> list[tuple[int, int]]:
    """DEPTH levels from ``best`` outwards, 1-3 ticks apart, amounts 0.01-5."""
    out = []
    price = best
    for _ in range(DEPTH):
        out.append((price, rng.randint(1, 500) * ONE // 100))
        price += rng.randint(1, 3) * tick
    return out


def views(venues: int, count: int, seed: int = 12) -> list[Received]:
    """``count`` depth-10 views spread over ``venues`` venues, their tops moving by ticks
    around a common mid (so prices overlap across venues, as on a real instrument)."""
    rng = random.Random(seed)
    mid = 65_000 * ONE
    now = time.time_ns()
    out = []
    seqs = [0] * venues
    for i in range(count):
        v = i % venues
        seqs[v] += 1
        best_bid = mid - rng.randint(1, 20) * TICK
        best_ask = mid + rng.randint(1, 20) * TICK
        bids = side(rng, best_bid, -TICK)
        asks = side(rng, best_ask, TICK)
        venue = f"v{v:02d}"
        body = ViewMsg(
            venue=venue,
            instrument=INSTRUMENT,
            bids=wire_levels(bids),
            asks=wire_levels(asks),
            venue_seq=None,
            exchange_ms=None,
            recv_ns=now,
        )
        message = BusMessage(view_subject(venue, INSTRUMENT), 1, seqs[v], now, body)
        out.append(Received(message, False, time.monotonic_ns()))
    return out


def cpu_per_view(
    received: list[Received], step: Callable[[list[VenueUpdate]], object], batch: int
) -> float:
    """CPU µs per view through a fresh ``ViewGate`` and ``step``, ``batch`` views per step
    (``apply_in_batches`` takes whatever is queued: 1 when idle, more under load)."""
    gate = ViewGate(INSTRUMENT, stale_after=3600.0)
    now = 0.0
    gate.on_bus(True, now)
    wall = time.time_ns()
    pending: list[VenueUpdate] = []
    start = time.process_time()
    for item in received:
        pending += gate.on_received(item, now, wall)
        if len(pending) >= batch:
            step(pending)
            pending.clear()
    if pending:
        step(pending)
    return (time.process_time() - start) / len(received) * 1e6


def ladder_step() -> Callable[[list[VenueUpdate]], object]:
    return LiquidityAggregator(DEPTH, Fanout[LiquidityState]()).apply_batch


def merge_step() -> Callable[[list[VenueUpdate]], object]:
    return Aggregator(DEPTH, Fanout[BookState]()).apply_batch


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ladder_ingest")
    parser.add_argument("--views", type=int, default=20_000, help="views per run (default 20000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per row, alternated (default 5)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print(
        "| venues | views per batch | gateway ladder: ViewGate + LiquidityAggregator, "
        "µs CPU/view | aggregator merge: ViewGate + Aggregator, µs CPU/view |"
    )
    print("| --- | --- | --- | --- |")
    for venues in VENUE_COUNTS:
        received = views(venues, args.views)
        for batch in BATCHES:
            ladder: list[float] = []
            merged: list[float] = []
            for _ in range(args.runs):  # alternated, so a load spike hits both columns alike
                ladder.append(cpu_per_view(received, ladder_step(), batch))
                merged.append(cpu_per_view(received, merge_step(), batch))
            print(f"| {venues} | {batch} | {_cell(ladder)} | {_cell(merged)} |", flush=True)
    print(f"\nload average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


if __name__ == "__main__":
    main()
