"""The fan-out peer: grpcio's own asyncio server (``grpc.aio``) streaming pre-encoded Summaries.

``python -m benchmarks.aio_peer CLIENTS [SECONDS]`` prints one JSON line. The server (one
process pinned to the service's core, as in ``benchmarks.rig``) publishes a new Summary
``RATE`` times a second, the same bytes for every stream (identity serializers, so grpcio
does no protobuf work either: the peer of ``summary.EncodedBook``); each stream sends the
newest Summary once it changed, like the service's streams. The clients are
``rig.client_child`` (grpcio threads on the other core). Reported: Summaries each client
received per second and the server's CPU per delivered Summary, the figure
``benchmarks.ab fanout`` gives for the service.
"""

from __future__ import annotations

import functools
import json
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, Final

from benchmarks import rig

RATE: Final = 500.0
"""Summaries published per second (the service publishes 220-520/s in ``fanout``)."""
METHOD: Final = "/orderbook.OrderbookAggregator/BookSummary"


def summary_bytes(seq: int, depth: int = 10) -> bytes:
    """A Summary of ``depth`` levels a side from two venues, protobuf-encoded by hand."""

    def level(venue: bytes, price: float, amount: float) -> bytes:
        body = b"\x0a" + bytes([len(venue)]) + venue
        body += b"\x11" + struct.pack("<d", price) + b"\x19" + struct.pack("<d", amount)
        return body

    out = b"\x09" + struct.pack("<d", 0.00001)
    for tag, sign in ((b"\x12", -1), (b"\x1a", 1)):
        for i in range(depth):
            venue = b"binance" if i % 2 else b"bitstamp"
            body = level(venue, 0.05 + sign * (i + 1) * 1e-5, 1.0 + (seq + i) % 7)
            out += tag + bytes([len(body)]) + body
    return out


class _Latest:
    """The newest Summary and its number."""

    def __init__(self, data: bytes) -> None:
        self.seq = 0
        self.data = data

    def newer_than(self, seq: int) -> bool:
        return self.seq != seq


def server_child(conn: Connection, port: int, seconds: float) -> None:
    rig.pin({rig.SERVICE_CPU})
    import asyncio

    import grpc

    async def main() -> None:
        latest = _Latest(summary_bytes(0))
        changed = asyncio.Condition()

        async def book_summary(request: bytes, context: Any) -> Any:
            seq = -1
            while True:
                async with changed:
                    await changed.wait_for(functools.partial(latest.newer_than, seq))
                    seq = latest.seq
                    data = latest.data
                yield data

        handler = grpc.method_handlers_generic_handler(
            "orderbook.OrderbookAggregator",
            {
                "BookSummary": grpc.unary_stream_rpc_method_handler(
                    book_summary, request_deserializer=None, response_serializer=None
                )
            },
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        encoded = [summary_bytes(i) for i in range(64)]
        conn.send("ready")
        loop = asyncio.get_running_loop()
        measuring = False
        cpu0 = wall0 = 0.0
        published = 0
        interval = 1.0 / RATE
        next_at = loop.time()
        while True:
            if not measuring and conn.poll():
                conn.recv()  # "measure": the clients are connected
                measuring = True
                cpu0, wall0, published = time.process_time(), time.monotonic(), 0
            if measuring and time.monotonic() - wall0 >= seconds:
                break
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            async with changed:
                latest.seq += 1
                latest.data = encoded[latest.seq & 63]
                changed.notify_all()
            published += 1
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        conn.send({"cpu": cpu / wall, "publications": published / wall})
        await server.stop(0)

    asyncio.run(main())


def one(clients: int, seconds: float = 8.0) -> dict[str, Any]:
    port = rig.free_port()
    server, sconn = rig.start(server_child, port, seconds)
    assert sconn.recv() == "ready"
    target = f"127.0.0.1:{port}"
    half = clients // 2
    groups = [g for g in ([target] * half, [target] * (clients - half)) if g]
    procs = [rig.start(rig.client_child, g, False, 0.0) for g in groups]
    for _, cconn in procs:
        assert cconn.recv() == "connected"
    sconn.send("measure")
    result = sconn.recv()
    rates = []
    for proc, cconn in procs:
        cconn.send("stop")
        for count, first, last in cconn.recv():
            rates.append(
                (count - 1) / ((last - first) / 1e9) if count > 1 and last > first else 0.0
            )
        proc.join(10)
    server.join(10)
    delivered = sum(rates)
    return {
        "clients": clients,
        "per_client_median": sorted(rates)[len(rates) // 2],
        "delivered_per_s": delivered,
        "publications_per_s": result["publications"],
        "cpu_share": result["cpu"],
        "cpu_us_per_summary": result["cpu"] / delivered * 1e6 if delivered else 0.0,
    }


if __name__ == "__main__":
    print(json.dumps(one(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 8.0)))
