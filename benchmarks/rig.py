"""Processes for the end-to-end benchmarks: simulator, service and grpcio clients apart.

Each runs in its own process (``multiprocessing`` spawn) so none shares an interpreter,
and on a machine with two or more cores the service is pinned to core 0 while the
simulator and the clients share the others: the service's figures (frames/s, CPU per
frame) are then those of one core. Every child talks to the parent over a pipe only.

* ``sim_child`` — ``dragonflybot.sim.serve_simulation`` (lean wsproto writer, batched).
* ``service_child`` — ``dragonflybot.app.run_app``, the real service, pointed at the
  simulator; its feeds start only on the parent's "go" (so the clients are connected
  first). With ``trace`` it also records, for the latency benchmark, every frame as it
  leaves the socket (through ``run_feed``'s ``connect`` seam) and every published state
  (the ``SummaryPublisher`` of each instrument, wrapped), matched up afterwards.
* ``client_child`` — grpcio clients of ``BookSummary``, one thread and one channel (own
  TCP connection) each, counting and optionally time-stamping what they receive.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from dragonflybot.config import InstrumentConfig

CTX = multiprocessing.get_context("spawn")
SERVICE_CPU = 0
_STAMP = re.compile(r'"T_send_ns":(\d+)')


MAX_CLIENTS: Final = 2048
"""Connections the benchmarked service accepts (``limits.max_connections``)."""


def other_cpus() -> set[int]:
    cpus = os.sched_getaffinity(0)
    rest = cpus - {SERVICE_CPU}
    return rest or cpus


def pin(cpus: set[int] | None) -> None:
    if cpus and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
    parent, child = CTX.Pipe()
    proc = CTX.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    return proc, parent


def stop(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (``/proc``: any child, by pid)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay() -> float:
    """Seconds this process's main thread has been runnable but waiting for a core
    (``/proc/self/schedstat``; 0.0 where the kernel does not keep it)."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- simulator ------------------------------------------------------------------------------


def sim_child(conn: Connection, config: dict[str, Any]) -> None:
    pin(other_cpus())
    from dragonflybot.sim import SimConfig, serve_simulation

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve_simulation, SimConfig(**config))
            conn.send({v: (e.ws_url, e.rest_url) for v, e in handle.endpoints.items()})
            await trio.sleep_forever()

    trio.run(main)


def start_sim(**config: Any) -> tuple[Any, dict[str, tuple[str, str]]]:
    proc, conn = start(sim_child, config)
    if not conn.poll(120):
        stop(proc)
        raise RuntimeError("the simulator did not start")
    endpoints: dict[str, tuple[str, str]] = conn.recv()
    return proc, endpoints


# --- service --------------------------------------------------------------------------------

Plan = list[tuple[str, int, list[tuple[str, str, str, str]]]]
"""Per instrument: (name, gRPC port, [(venue, mode, ws_url, rest_url)])."""


def plan_instruments(plan: Plan) -> list[InstrumentConfig]:
    """The plan as instrument configuration, as every benchmarked service process runs it.

    Imports the package lazily: a child process pins its CPU before importing it.
    """
    from dragonflybot.config import InstrumentConfig, VenueConfig

    return [
        InstrumentConfig(
            name=name,
            listen=f"127.0.0.1:{port}",
            venues=[
                VenueConfig(
                    name=venue,
                    mode=mode,  # type: ignore[arg-type]
                    ws_url=ws,
                    rest_url=rest,
                    stale_after=30.0,
                    dead_after=60.0,
                )
                for venue, mode, ws, rest in venues
            ],
        )
        for name, port, venues in plan
    ]


class _TracingStream:
    """Logs each frame with its ``monotonic_ns`` as the WebSocket client hands it over, and
    in ``reads`` the stamp of the socket read that brought it in.

    The two differ when one socket read brings several frames: the client hands out the
    later ones from its buffer (``WsprotoStream._ready``, read here) only once the feed
    comes back for them, so a loop that applies each frame before receiving the next would
    otherwise have the wait of a buffered frame left out of its latency.
    """

    def __init__(self, stream: Any, log: list[tuple[int, str | bytes]], reads: list[int]) -> None:
        self._stream = stream
        self._log = log
        self._reads = reads
        self._read_ns = 0

    @property
    def url(self) -> str:
        return str(self._stream.url)

    @property
    def last_received(self) -> float:
        return float(self._stream.last_received)

    async def ping(self) -> None:
        await self._stream.ping()

    async def send(self, message: str) -> None:
        await self._stream.send(message)

    async def receive(self) -> str | bytes:
        buffered = bool(getattr(self._stream, "_ready", None))
        frame: str | bytes = await self._stream.receive()
        now = time.monotonic_ns()
        if not buffered:
            self._read_ns = now
        self._log.append((now, frame))
        self._reads.append(self._read_ns)
        return frame

    async def aclose(self) -> None:
        await self._stream.aclose()


def stamped_socket(log: list[list[tuple[int, bytes]]]) -> Callable[[Any], Any]:
    """A ``GrpcServer.wrap_accepted`` that logs ``(monotonic_ns, bytes)`` after each write,
    one list per connection in ``log``: the stamp is taken once the bytes are in the kernel.

    One wrapper per accepted connection, so an unwrapped server has nothing on its send
    path. A tree without the seam (an A/B "before") gets the same wrapper by replacing the
    ``Connection`` its server module builds. anyio is imported here, in the child.
    """
    import anyio.abc

    class StampedRaw:
        """The raw socket, its ``send`` stamped like ``StampedSocket.send``."""

        def __init__(self, sock: Any, writes: list[tuple[int, bytes]]) -> None:
            self._sock = sock
            self._writes = writes

        def send(self, data: bytes) -> int:
            sent: int = self._sock.send(data)
            self._writes.append((time.monotonic_ns(), bytes(data[:sent])))
            return sent

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sock, name)

    class StampedSocket(anyio.abc.SocketStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self._writes: list[tuple[int, bytes]] = []
            log.append(self._writes)

        @property
        def extra_attributes(self) -> Any:
            # The server writes directly with the raw socket's non-blocking ``send`` when
            # nothing is queued (``service.sendqueue``): that path is stamped too.
            attributes = dict(self._inner.extra_attributes)
            raw = attributes.get(anyio.abc.SocketAttribute.raw_socket)
            if raw is not None:
                stamped = StampedRaw(raw(), self._writes)
                attributes[anyio.abc.SocketAttribute.raw_socket] = lambda: stamped
            return attributes

        async def receive(self, max_bytes: int = 65536) -> bytes:
            data: bytes = await self._inner.receive(max_bytes)
            return data

        async def send(self, item: bytes) -> None:
            await self._inner.send(item)
            self._writes.append((time.monotonic_ns(), bytes(item)))

        async def send_eof(self) -> None:
            await self._inner.send_eof()

        async def aclose(self) -> None:
            await self._inner.aclose()

    return StampedSocket


def service_child(
    conn: Connection,
    plan: Plan,
    trace: bool,
    max_seconds: float,
    max_client_rate: float,
    quiet: float,
    expect_frames: int = 0,
) -> None:
    pin({SERVICE_CPU})
    from dragonflybot.app import run_app
    from dragonflybot.client import connect_websocket
    from dragonflybot.config import AppConfig, LimitsConfig
    from dragonflybot.feed import run_feed

    frames_log: list[tuple[int, str | bytes]] = []
    reads: list[int] = []
    writes: list[list[tuple[int, bytes]]] = []
    states: list[tuple[int, int | None, bytes, int]] = []

    @asynccontextmanager
    async def tracing_connect(url: str, **kwargs: Any) -> AsyncIterator[Any]:
        async with connect_websocket(url, **kwargs) as stream:
            yield _TracingStream(stream, frames_log, reads)

    config = AppConfig(
        instruments=plan_instruments(plan),
        depth=10,
        log_level="WARNING",
        max_client_rate=max_client_rate,
        # Every grpcio client has its own connection: the 1,000-client fan-out needs more
        # than the default 512 (the security limit, not a measured one).
        limits=LimitsConfig(max_connections=MAX_CLIENTS),
    )
    go = trio.Event()

    async def gated_feed(*args: Any, **kwargs: Any) -> None:
        await go.wait()
        runner = functools.partial(run_feed, connect=tracing_connect) if trace else run_feed
        await runner(*args, **kwargs)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            app = await nursery.start(functools.partial(run_app, config, feed_runner=gated_feed))
            if trace:
                for rt in app.instruments.values():
                    publisher = rt.publisher
                    original = publisher.publish

                    def traced(state: Any, _orig: Any = original, _pub: Any = publisher) -> None:
                        _orig(state)
                        states.append(
                            (
                                state.seq,
                                state.newest_recv_ns,
                                _pub.books.latest().summary,
                                state.published_ns,
                            )
                        )

                    publisher.publish = traced
                stamp_writes(app, stamped_socket(writes))
            conn.send("ready")
            await trio.to_thread.run_sync(conn.recv)
            go.set()
            feeds = [s for rt in app.instruments.values() for s in rt.feed_stats.values()]
            with trio.move_on_after(30):
                while not all(s.state == "live" for s in feeds):  # noqa: ASYNC110
                    await trio.sleep(0.002)
            not_live = [s.venue for s in feeds if s.state != "live"]
            if not_live:
                conn.send({"error": f"not live within 30 s: {', '.join(not_live)}"})
                app.shutdown()
                return
            # Three samples only (a list per poll would grow the RSS the soak measures):
            # the start (the last poll before the first frame with every feed live), the
            # last time the frame count moved, and the end. With ``expect_frames`` the
            # run ends as soon as the feeds have read that many frames since they started
            # (those before every feed was live too: a diff feed syncs on the replay's
            # first frames): frames that trickle in after the replay (pongs, heartbeats,
            # one every few seconds) would otherwise move "the last time the count
            # moved" by seconds, and the rate with it.
            waited_first = waited_moved = run_delay()
            begin = time.perf_counter()
            first = moved = final = (begin, time.process_time(), sum(s.frames for s in feeds))
            while final[0] - begin < max_seconds:
                await trio.sleep(0.01)
                final = (time.perf_counter(), time.process_time(), sum(s.frames for s in feeds))
                if final[2] != moved[2]:
                    moved = final
                    waited_moved = run_delay()
                    if expect_frames and final[2] >= expect_frames:
                        break
                elif moved is first:
                    # No frame yet since every feed went live (a replay starts after its
                    # settle time): the run starts with the first one.
                    first = moved = final
                    waited_first = waited_moved = run_delay()
                elif final[0] - moved[0] > quiet:
                    break  # the replay has ended
            samples = [first, moved, final]
            if conn.poll():
                conn.recv()
            agg = [rt.aggregator_stats for rt in app.instruments.values()]
            result = {
                "samples": samples,
                # Seconds the service was ready to run but waited for its core, first to
                # moved: with the CPU time, the part of the run it was not idle.
                "run_delay": waited_moved - waited_first,
                "publications": sum(a.publications for a in agg),
                "updates": sum(a.updates for a in agg),
                "forwarded": sum(s.forwarded for s in feeds),
                "states": states,
                "writes": writes,
                "reads": reads,
                # Wall minus monotonic clock: puts the service's monotonic stamps on the
                # simulator's and the client's wall clock (one machine) for per-hop figures.
                "clock_offset_ns": time.time_ns() - time.monotonic_ns(),
                "frames": [
                    (
                        t,
                        int(m.group(1))
                        if (m := _STAMP.search(f[-60:] if isinstance(f, str) else ""))
                        else None,
                    )
                    for t, f in frames_log
                ],
            }
            conn.send(result)
            app.shutdown()

    trio.run(main)


def stamp_writes(app: Any, wrap: Callable[[Any], Any]) -> None:
    """Every gRPC server of ``app`` wraps the sockets it accepts from now on with ``wrap``."""
    servers = {id(rt.server): rt.server for rt in app.instruments.values() if rt.server}
    if all(hasattr(server, "wrap_accepted") for server in servers.values()):
        for server in servers.values():
            server.wrap_accepted = wrap
        return
    from dragonflybot.service import server as module  # an older tree: no seam

    original = module.__dict__["Connection"]

    def wrapped(methods: Any, stream: Any, *args: Any, **kwargs: Any) -> Any:
        return original(methods, wrap(stream), *args, **kwargs)

    module.__dict__["Connection"] = wrapped


# --- grpcio clients -------------------------------------------------------------------------


def client_child(conn: Connection, targets: list[str], record: bool, delay: float) -> None:
    pin(other_cpus())
    import grpc

    method = "/orderbook.OrderbookAggregator/BookSummary"
    results: list[Any] = [None] * len(targets)
    calls: list[Any] = []
    connected = threading.Barrier(len(targets) + 1)
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.initial_reconnect_backoff_ms", 50),
        ("grpc.min_reconnect_backoff_ms", 50),
    ]

    def reader(i: int, target: str) -> None:
        channel = grpc.insecure_channel(target, options=options)
        stub = channel.unary_stream(
            method, request_serializer=lambda _: b"", response_deserializer=lambda b: b
        )
        call = stub(None, wait_for_ready=True)
        calls.append(call)
        received: list[tuple[int, bytes]] = []
        count = 0
        first_ns = last_ns = 0
        first = True
        try:
            for message in call:
                if first:
                    first = False
                    connected.wait()
                    continue
                count += 1
                last_ns = time.monotonic_ns()
                if count == 1:
                    first_ns = last_ns
                if record:
                    received.append((time.time_ns(), message))
                if delay:
                    time.sleep(delay)
        except grpc.RpcError:
            pass
        results[i] = received if record else (count, first_ns, last_ns)
        channel.close()

    threads = [
        threading.Thread(target=reader, args=(i, t), daemon=True) for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    connected.wait()
    conn.send("connected")
    conn.recv()  # "stop"
    for call in list(calls):
        call.cancel()
    for thread in threads:
        thread.join(10)
    conn.send(results)


def run_pipeline(
    plan: Plan,
    clients: list[tuple[list[str], bool, float]],
    *,
    trace: bool = False,
    max_seconds: float = 60.0,
    monitor: Callable[[int], None] | None = None,
    max_client_rate: float = 0.0,
    quiet: float = 0.3,
    client: Callable[..., None] = client_child,
    expect_frames: int = 0,
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Service + client processes over a running simulator; returns what each reported.
    ``monitor(service_pid)`` is called about once a second while the service runs.
    The replay counts as ended once no frame came for ``quiet`` seconds (on a loaded
    machine the service can be descheduled that long: a replay benchmark passes more),
    or, with ``expect_frames``, once the feeds have read that many frames in all.
    ``client``: the client process (this module's grpcio threads, or
    ``benchmarks.h2client.client_child``: raw-HTTP/2 streams, the same pipe protocol)."""
    service, sconn = start(
        service_child, plan, trace, max_seconds, max_client_rate, quiet, expect_frames
    )
    procs = [service]
    try:
        if not sconn.poll(60):
            raise RuntimeError("the service did not start")
        sconn.recv()
        cconns = []
        for targets, record, delay in clients:
            proc, cconn = start(client, targets, record, delay)
            procs.append(proc)
            cconns.append(cconn)
        for cconn in cconns:
            if not cconn.poll(60):
                raise RuntimeError("a gRPC client did not connect")
            cconn.recv()
        sconn.send("go")
        deadline = time.monotonic() + max_seconds + 60
        while not sconn.poll(1.0):
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not report")
            if monitor is not None:
                monitor(service.pid)
        result: dict[str, Any] = sconn.recv()
        if "error" in result:
            raise RuntimeError(result["error"])
        outs = []
        for cconn in cconns:
            cconn.send("stop")
        for cconn in cconns:
            outs.append(cconn.recv() if cconn.poll(30) else [])
        return result, outs
    finally:
        for proc in procs:
            stop(proc)
