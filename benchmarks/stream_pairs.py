"""Kraken and OKX beside cryptofeed, paired: both paths alternated in one process.

On a loaded machine the suite's medians swing from run to run; alternating the two paths
and keeping each one's fastest run cancels most of the load. Run:
``DRAGONFLYBOT_SAMPLES=... .venv/bin/python -m benchmarks.stream_pairs [RUNS]``.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

from benchmarks import stream_venues as sv


def paired(venue: str, books: list[sv.Book], runs: int) -> tuple[float, float]:
    """(ours, cryptofeed) fastest seconds per update over ``runs`` alternations."""
    ours_frames = [b.v2_updates if venue == "kraken" else b.updates for b in books]
    count = sum(len(f) for f in ours_frames)
    rig = sv.CryptofeedRig(venue, books)
    snapshots = [b.snapshot for b in books]
    cf_frames = [text for b in books for text in b.updates]
    best_ours = best_cf = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            state = sv.listeners(venue, books)
            start = time.perf_counter()
            sv.run_ours(state, ours_frames)
            best_ours = min(best_ours, time.perf_counter() - start)
            rig.feed_frames(snapshots)
            start = time.perf_counter()
            rig.feed_frames(cf_frames)
            best_cf = min(best_cf, time.perf_counter() - start)
    finally:
        gc.enable()
        rig.loop.close()
    return best_ours / count, best_cf / count


def main(argv: list[str]) -> int:
    samples = os.environ.get("DRAGONFLYBOT_SAMPLES")
    if not samples:
        print("set DRAGONFLYBOT_SAMPLES to the recordings folder", file=sys.stderr)
        return 2
    runs = int(argv[0]) if argv else 25
    folder = Path(samples)
    for venue, books in (("kraken", sv.kraken_books(folder)), ("okx", sv.okx_books(folder))):
        ours, cf = paired(venue, books, runs)
        print(
            f"{venue}: dragonflybot {ours * 1e6:.2f} us/update, cryptofeed {cf * 1e6:.2f} "
            f"us/update, {cf / ours:.2f}x (fastest of {runs} alternated runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
