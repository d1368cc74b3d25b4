"""One measurement for an A/B comparison of two source trees, printed as a JSON line.

``python -m benchmarks.ab throughput snapshot 2 [count]``: one end-to-end throughput
run (``benchmarks.throughput.one_run``); ``python -m benchmarks.ab parse`` the
in-process per-frame cost of a top-N snapshot protocol (Bitstamp ``order_book`` at 100
levels, Binance ``depth20``), read 10 deep as the feed reads it. Run the same command
with ``PYTHONPATH=<other tree>/src`` in alternation (the machine is shared and loaded:
compare the minimum or median of many alternating runs, never one run).
"""

from __future__ import annotations

import json
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


def main(argv: list[str]) -> None:
    if argv[0] == "parse":
        print(json.dumps(parse_costs()))
        return
    from benchmarks import rig
    from benchmarks.throughput import captures, one_run

    mode, venues = argv[1], int(argv[2])
    count = int(argv[3]) if len(argv) > 3 else 150_000
    paths = captures(mode, count)  # type: ignore[arg-type]
    sim, endpoints = rig.start_sim(
        replay=tuple(paths), as_fast_as_possible=True, ws_backend="wsproto"
    )
    try:
        result = one_run(endpoints, venues, mode)
    finally:
        rig.stop(sim)
    print(json.dumps({**result, "source": dragonflybot.__file__}))


if __name__ == "__main__":
    main(sys.argv[1:])
