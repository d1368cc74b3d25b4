"""The send path alone: our ``GrpcServer`` and ``grpc.aio`` fed by the same synthetic publisher.

``python -m benchmarks.sendpath`` (or ``python -m benchmarks --only sendpath``, which
records the table in docs/performance.md) runs 1, 10 and 100 clients against each server.
Why a synthetic publisher: in ``benchmarks.fanout`` the Summaries come from simulated
feeds whose simulator shares the clients' core, so with 100 clients the simulator slows
and the service publishes less; the send path's cost was then hidden behind the feeds'
and bounded by the clients. Here both servers get a new pre-encoded Summary ``RATE`` times
a second from a task in their own process (``aio_peer.server_child`` for ``grpc.aio``;
``ours_child`` below drives the service's real ``GrpcServer``, ``Connection`` and
``BookSummaryService`` over a ``Fanout`` of ``EncodedBook``, exactly the objects the
aggregator publishes), and both are read by the same grpcio clients
(``rig.client_child``, two processes on the other core). The server is pinned to core 0.

Reported per case: the server's CPU (``time.process_time`` over wall time, so other
engineers' load on the machine does not inflate it), the publications it made per
second (the "aggregator": a send path that steals its core shows as fewer), what each
client received per second, and the marginal CPU per Summary per client: CPU growth
over delivered-Summary growth from the 1-client case scaled to the case's publication
rate, which takes the publisher's own work out (it is the same for any number of
clients, per publication).

``--server ours|aio|both``, ``--clients 1,10,100``, ``--seconds S``, ``--rounds N``
(rounds alternate the servers). Run it with ``PYTHONPATH=<other tree>/src`` for an A/B
of two source trees (the children are spawned with the parent's ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any, Final

import trio

from benchmarks import aio_peer, rig
from benchmarks.harness import Options, Suite, Table

RATE: Final = aio_peer.RATE
"""Summaries published per second, the same for both servers."""
CLIENTS: Final = (1, 10, 100)


def ours_child(conn: Connection, port: int, seconds: float) -> None:
    """The service's gRPC server over a fan-out fed ``RATE`` pre-encoded Summaries a second."""
    rig.pin({rig.SERVICE_CPU})
    from dragonflybot.aggregator.fanout import Fanout
    from dragonflybot.aggregator.state import BookState
    from dragonflybot.config import LimitsConfig
    from dragonflybot.core.merge import Consolidated
    from dragonflybot.service.book_summary import BookSummaryService
    from dragonflybot.service.server import GrpcServer
    from dragonflybot.service.summary import EncodedBook

    async def main() -> None:
        books: Fanout[EncodedBook] = Fanout()
        state = BookState(
            seq=1,
            published_ns=0,
            book=Consolidated(bids=(), asks=(), spread=None),
            live=frozenset(),
            newest_recv_ns=None,
        )
        encoded = [EncodedBook(state, aio_peer.summary_bytes(i)) for i in range(64)]
        books.publish(encoded[0])
        server = GrpcServer(
            [BookSummaryService(books)],
            "127.0.0.1",
            port,
            limits=LimitsConfig(max_connections=rig.MAX_CLIENTS),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            conn.send("ready")
            measuring = False
            cpu0 = wall0 = 0.0
            published = seq = 0
            interval = 1.0 / RATE
            next_at = trio.current_time()
            while True:
                if not measuring and conn.poll():
                    conn.recv()  # "measure": the clients are connected
                    measuring = True
                    cpu0, wall0, published = time.process_time(), time.monotonic(), 0
                if measuring and time.monotonic() - wall0 >= seconds:
                    break
                next_at += interval
                await trio.sleep_until(max(next_at, trio.current_time()))
                seq += 1
                books.publish(encoded[seq & 63])
                published += 1
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            conn.send({"cpu": cpu / wall, "publications": published / wall})
            server.shutdown()
            nursery.cancel_scope.cancel()

    trio.run(main)


SERVERS: Final = {"ours": ours_child, "aio": aio_peer.server_child}


def one(server: str, clients: int, seconds: float) -> dict[str, Any]:
    """One case: ``clients`` grpcio clients of ``server`` for ``seconds`` of measurement."""
    port = rig.free_port()
    proc, sconn = rig.start(SERVERS[server], port, seconds)
    procs = [proc]
    try:
        if not sconn.poll(60) or sconn.recv() != "ready":
            raise RuntimeError(f"the {server} server did not start")
        target = f"127.0.0.1:{port}"
        half = clients // 2
        groups = [g for g in ([target] * half, [target] * (clients - half)) if g]
        cconns = []
        for group in groups:
            cproc, cconn = rig.start(rig.client_child, group, False, 0.0)
            procs.append(cproc)
            cconns.append(cconn)
        for cconn in cconns:
            if not cconn.poll(120):
                raise RuntimeError("a gRPC client did not connect")
            cconn.recv()
        sconn.send("measure")
        if not sconn.poll(seconds + 60):
            raise RuntimeError(f"the {server} server did not report")
        result = sconn.recv()
        rates: list[float] = []
        for cconn in cconns:
            cconn.send("stop")
        for cconn in cconns:
            for count, first, last in cconn.recv() if cconn.poll(30) else []:
                rates.append(
                    (count - 1) / ((last - first) / 1e9) if count > 1 and last > first else 0.0
                )
    finally:
        for p in procs:
            rig.stop(p)
    delivered = sum(rates)
    return {
        "server": server,
        "clients": clients,
        "per_client_median": statistics.median(rates) if rates else 0.0,
        "per_client_min": min(rates) if rates else 0.0,
        "delivered_per_s": delivered,
        "publications_per_s": result["publications"],
        "cpu_share": result["cpu"],
    }


def marginal_us(base: dict[str, Any], case: dict[str, Any]) -> float | None:
    """Server CPU per extra Summary delivered, from ``base`` (1 client) to ``case``.

    ``base`` is first scaled to ``case``'s publication rate: on a loaded machine a
    many-client run may publish less, and the publisher's own work (shared by all
    clients) must not be charged to the clients, nor credited to them.
    """
    if not base["publications_per_s"]:
        return None
    scale = case["publications_per_s"] / base["publications_per_s"]
    extra = case["delivered_per_s"] - base["delivered_per_s"] * scale
    if extra <= 0:
        return None
    return float((case["cpu_share"] - base["cpu_share"] * scale) / extra * 1e6)


def sweep(
    servers: list[str], clients: list[int], seconds: float, rounds: int
) -> list[dict[str, Any]]:
    """Every case, the servers alternating within each round; each result also printed."""
    results = []
    for round_ in range(rounds):
        for count in clients:
            for server in servers:
                result = {**one(server, count, seconds), "round": round_}
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def table(results: list[dict[str, Any]], seconds: float) -> Table:
    out = Table(
        "Send path: our GrpcServer vs grpc.aio, same publisher and clients",
        f"A new pre-encoded Summary {RATE:g} times a second, published in the server's own "
        f"process (core 0); grpcio clients in two processes on the other core; {seconds:g} s "
        "per case. *CPU*: server process CPU time over wall time. *marginal µs*: CPU growth "
        "over delivered-Summary growth from the same round's 1-client case scaled to this "
        "case's publications/s (the cost of one Summary to one more client; the publisher's "
        "own work taken out). *per client*: median (slowest) client's Summaries/s "
        "over publications/s. One row per case and round.",
        [
            "server",
            "clients",
            "publications/s",
            "per client/s median (slowest)",
            "delivered/publications",
            "CPU",
            "marginal µs/Summary/client",
        ],
    )
    bases = {(r["server"], r["round"]): r for r in results if r["clients"] == 1}
    for r in results:
        base = bases.get((r["server"], r["round"]))
        slope = marginal_us(base, r) if base is not None and r is not base else None
        pubs = r["publications_per_s"]
        out.rows.append(
            [
                "dragonflybot h2" if r["server"] == "ours" else "grpc.aio",
                str(r["clients"]),
                f"{pubs:,.0f}",
                f"{r['per_client_median']:,.0f} ({r['per_client_min']:,.0f})",
                f"{r['per_client_min'] / pubs * 100:.0f} %" if pubs else "—",
                f"{r['cpu_share'] * 100:.1f} %",
                f"{slope:.1f}" if slope is not None else "—",
            ]
        )
    return out


def run(options: Options) -> list[Table]:
    seconds = 3.0 if options.quick else 8.0
    results = sweep(["ours", "aio"], list(CLIENTS), seconds, 1 if options.quick else 2)
    return [table(results, seconds)]


SUITE = Suite(
    name="sendpath",
    title="End to end: the send path against grpc.aio",
    run=run,
    packages=("trio", "h2", "grpcio"),
    timing=(
        "- Timing: server process CPU time (`time.process_time`) over wall time; clients "
        "count Summaries between their first and last"
    ),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sendpath", description=__doc__)
    parser.add_argument("--server", choices=["ours", "aio", "both"], default="both")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    servers = ["ours", "aio"] if args.server == "both" else [args.server]
    clients = [int(c) for c in args.clients.split(",")]
    results = sweep(servers, clients, args.seconds, args.rounds)
    print(table(results, args.seconds).markdown())


if __name__ == "__main__":
    main()
