"""End-to-end throughput: simulated venues replaying as fast as the service reads.

Venue (simulator process, replaying a pre-rendered capture with no pacing, its writes
batched) → WebSocket over loopback → the service process (``run_app``: feeds, aggregator,
purerpc server; pinned to one core) → gRPC over loopback → a grpcio client process.
Measured in the service process, from the moment every feed is live until the frames stop:
venue frames consumed per second (wall clock) and service CPU time per frame
(``time.process_time``, i.e. everything the service did for that frame: receive, parse,
book, merge, encode, send). The replay's back-pressure (it waits once 8192 frames are
queued for a client) makes the service's reading speed the pace.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Final

from benchmarks import rig
from benchmarks.frames import STREAM_VENUES, Mode, write_capture, write_stream_capture
from benchmarks.harness import Options, Suite, Table, spread

FEED_MODE: Final = {"diff": "depth", "snapshot": "top"}
"""The feed mode serving each kind of captured stream."""

INSTRUMENTS: Final = ("ethbtc", "btcusdt")
REPLAYED: Final = ("binance", "bitstamp", *STREAM_VENUES)
"""The venues the diff captures replay (``captures``); Kraken and OKX have no capture
writer here, so the one-book case holds these (it asked for every registered venue and
failed with ``KeyError`` once those two were registered)."""
ALL: Final = f"{len(REPLAYED)}: all replayed, one book"
LAYOUTS: Final[dict[str, list[tuple[str, tuple[str, ...]]]]] = {
    "1": [("ethbtc", ("binance",))],
    "2": [("ethbtc", ("binance", "bitstamp"))],
    "4": [("ethbtc", ("binance", "bitstamp")), ("btcusdt", ("binance", "bitstamp"))],
    ALL: [("ethbtc", REPLAYED)],
}
"""Venue connections -> (instrument, its venues). The last: every replayed venue in one
consolidated book (diff mode only: the stream venues have one book stream for both modes)."""


def captures(mode: Mode, count: int) -> list[str]:
    folder = Path(tempfile.gettempdir()) / "dragonflybot-bench"
    folder.mkdir(exist_ok=True)
    paths = []
    for venue in ("binance", "bitstamp"):
        path = folder / f"{venue}-{mode}-{count}.dfbcap"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            write_capture(tmp, venue, INSTRUMENTS, mode, count)
            tmp.rename(path)
        paths.append(str(path))
    if mode == "diff":
        for stream_venue in STREAM_VENUES:
            path = folder / f"{stream_venue}-{count}.dfbcap"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                write_stream_capture(tmp, stream_venue, INSTRUMENTS[:1], count)
                tmp.rename(path)
            paths.append(str(path))
    return paths


REPLAY_SETTLE: Final = 2.0
"""Seconds between a venue connection's subscription and the start of its replay: every
feed of the run connects and subscribes within it, so every replay starts with all feeds
live (with the simulator's default 50 ms, a 4-venue snapshot run's first replays ended
before its last feeds were live, and it measured 0 frames)."""
QUIET: Final = 5.0
"""No frame for this long ends a run (``rig.run_pipeline``); a loaded machine can
deschedule the service for longer than the default 0.3 s mid-replay."""


def start_replay(paths: list[str]) -> tuple[Any, dict[str, tuple[str, str]]]:
    """The simulator replaying ``paths`` as fast as the service reads, for ``one_run``."""
    return rig.start_sim(
        replay=tuple(paths),
        as_fast_as_possible=True,
        ws_backend="wsproto",
        replay_settle=REPLAY_SETTLE,
    )


def capture_parse_costs(frames: int = 10_000) -> dict[str, float]:
    """In process: µs of CPU per frame of the top-N snapshot protocols on the end-to-end
    run's own frames (the snapshot capture's first ``frames`` ethbtc frames per venue, read
    10 deep as the feed reads them, then the top read as the publisher does), best of 5.

    Beside ``benchmarks.ab parse`` (synthetic frames whose every amount changes each frame)
    this is the stream the end-to-end case replays, with its repeated heads and levels.
    """
    from dragonflybot.sim.capture import RecordKind, read_capture
    from dragonflybot.venues.binance import BinanceProtocol
    from dragonflybot.venues.bitstamp import BitstampProtocol

    binance_path, bitstamp_path = captures("snapshot", 20_000)[:2]
    out: dict[str, float] = {}
    for name, path in (("binance depth20", binance_path), ("bitstamp order_book", bitstamp_path)):
        records = read_capture(path).records
        texts = [
            r.payload
            for r in records
            if r.kind is RecordKind.WS_IN
            and (b"ethbtc@" in r.payload[:40] or b"order_book_ethbtc" in r.payload[-60:])
        ][:frames]
        best = float("inf")
        for _ in range(5):
            protocol: BinanceProtocol | BitstampProtocol
            if name.startswith("binance"):
                protocol = BinanceProtocol("ETH-BTC", mode="top", levels=20)
            else:
                protocol = BitstampProtocol("ETH-BTC", mode="top")
            protocol.connection_made()
            protocol.read_depth(10)
            receive, top = protocol.receive, protocol.top
            start = time.process_time()
            for text in texts:
                receive(text)
                top(10)
            best = min(best, (time.process_time() - start) / len(texts) * 1e6)
        out[name] = round(best, 3)
    return out


def one_run(
    endpoints: dict[str, tuple[str, str]], venues: str, mode: str, count: int = 0
) -> dict[str, float]:
    """One run over a replaying simulator; ``count``: the data frames each venue connection
    replays (the run ends once all of them are in, not at the next stray heartbeat).

    ``cpu_share``: the service's CPU seconds per wall second over the run, 1.0 when its
    core was busy all along (the service is then the bottleneck, not the rig).
    ``busy_share`` adds the time it was ready but waited for its core (other processes on
    a shared machine): 1.0 when it never waited for frames.
    """
    plan: rig.Plan = []
    for name, names in LAYOUTS[venues]:
        plan.append((name, rig.free_port(), [(v, FEED_MODE[mode], *endpoints[v]) for v in names]))
    targets = [f"127.0.0.1:{port}" for _, port, _ in plan]
    expect = count * sum(len(names) for _, names in LAYOUTS[venues])
    result, outs = rig.run_pipeline(
        plan, [(targets, False, 0.0)], max_seconds=120, quiet=QUIET, expect_frames=expect
    )
    samples = result["samples"]
    # From the start (every feed live) to the last time the frame count moved.
    t0, c0, f0 = samples[0]
    t1, c1, f1 = samples[1]
    frames = f1 - f0
    if not frames:
        raise RuntimeError(f"{venues} venue(s), {mode}: no frame arrived with every feed live")
    received = sum(o[0] for out in outs for o in out)
    return {
        "frames": frames,
        "rate": frames / (t1 - t0) if t1 > t0 else 0.0,
        "cpu_us": (c1 - c0) / frames * 1e6 if frames else 0.0,
        "cpu_share": (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0,
        "busy_share": (c1 - c0 + result.get("run_delay", 0.0)) / (t1 - t0) if t1 > t0 else 0.0,
        "summaries": received,
        "publications": result["publications"],
    }


def run(options: Options) -> list[Table]:
    count = 20_000 if options.quick else 150_000
    repeats = 1 if options.quick else 3
    table = Table(
        "Throughput, venue → service → grpcio client",
        f"Each venue connection replays {count:,} simulated frames per instrument as fast as the "
        "service reads them (diff: `<sym>@depth@100ms` / `diff_order_book_<pair>`; snapshot: "
        "`depth20` / `order_book`). 1 venue: Binance ethbtc; 2: Binance + Bitstamp ethbtc; 4: "
        "both venues for ethbtc and btcusdt (two instruments, two aggregators, two gRPC "
        f"streams); *{ALL}* (diff only): every replayed venue "
        f"({', '.join(REPLAYED)}) in one ethbtc book, Coinbase and Bybit from their stream "
        f"snapshot then updates. Service pinned to one core; median (min-max) of {repeats} runs. "
        "*Summaries*: Summaries the grpcio client received per run (conflated: a client gets "
        "the newest book, not every one). *Service busy share*: its CPU time plus the time it "
        "waited for its core, per second of the run (1.00: the service, not the replay, set the "
        "pace).",
        [
            "mode",
            "venues",
            "venue frames/s",
            "service CPU µs/frame",
            "service busy share",
            "Summaries received",
        ],
    )
    for mode in ("diff", "snapshot"):
        paths = captures(mode, count)
        sim, endpoints = start_replay(paths)
        try:
            for venues in ("1", "2", "4", ALL) if mode == "diff" else ("1", "2", "4"):
                runs: list[dict[str, Any]] = [
                    one_run(endpoints, venues, mode, count) for _ in range(repeats)
                ]
                table.rows.append(
                    [
                        mode,
                        venues,
                        spread([r["rate"] for r in runs], ",.0f"),
                        spread([r["cpu_us"] for r in runs], ".2f"),
                        spread([r["busy_share"] for r in runs], ".2f"),
                        spread([r["summaries"] for r in runs], ",.0f"),
                    ]
                )
                print("  ", table.rows[-1], flush=True)
        finally:
            rig.stop(sim)
    return [table]


SUITE = Suite(
    name="throughput",
    timing=(
        "- Timing: wall clock and CPU time (`time.process_time`) of the service process, "
        "median (min-max) of 3 runs (1 with `--quick`)"
    ),
    title="End to end: throughput",
    run=run,
    packages=("trio", "wsproto", "purerpc", "grpcio", "msgspec"),
)
