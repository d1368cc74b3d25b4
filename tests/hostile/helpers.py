"""Hostile clients and the means to watch their victim from outside.

``ServerProcess``: the server in a subprocess (``server_main.py``), with its RSS,
open descriptors and counters read from /proc and its own reports. ``Watcher``: an
ordinary grpcio client streaming ``BookSummary`` from a worker thread, whose
count must keep rising while an attack runs. ``RawH2``: a client on the ``h2``
library with every outbound check off, so it can send what a well-behaved
client never would; ``frame`` builds raw frames for what even h2 will not send.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio

from dragonflybot.service.messages import Summary

SERVER_MAIN = Path(__file__).with_name("server_main.py")
BOOK_SUMMARY = "/orderbook.OrderbookAggregator/BookSummary"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

GRPC_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", BOOK_SUMMARY.encode()),
    (b":authority", b"test"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One raw HTTP/2 frame."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


SETTINGS_EMPTY = frame(0x4, 0, 0)
SETTINGS_ACK = frame(0x4, 0x1, 0)


class ServerProcess:
    """``server_main.py`` in a subprocess; use as a context manager (SIGTERM on exit)."""

    def __init__(self, limits: dict[str, Any] | None = None, nofile: int | None = None):
        args = [sys.executable, str(SERVER_MAIN), json.dumps(limits or {})]
        if nofile is not None:
            args.append(str(nofile))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def stats(self) -> dict[str, int]:
        """The server's counters and open connections/streams (it prints them on SIGUSR1)."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        with trio.fail_after(5):
            line = await trio.to_thread.run_sync(self.proc.stdout.readline)
        assert line.startswith("STATS "), line
        report: dict[str, int] = json.loads(line[6:])
        return report

    async def wait_for(self, predicate: Any, within: float = 10.0) -> dict[str, int]:
        """Poll ``stats()`` until ``predicate(stats)``; fail after ``within`` seconds."""
        with trio.fail_after(within):
            while True:
                report = await self.stats()
                if predicate(report):
                    return report
                await trio.sleep(0.05)

    async def terminate(self) -> tuple[int, dict[str, int]]:
        """SIGTERM; the exit code and the final report (fails after 5 s)."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(5):
            rest = await trio.to_thread.run_sync(self.proc.stdout.read)
            code = await trio.to_thread.run_sync(self.proc.wait)
        reports = [line for line in rest.splitlines() if line.startswith("STATS ")]
        return code, json.loads(reports[-1][6:]) if reports else {}


class Watcher:
    """A well-behaved grpcio client streaming BookSummary in a worker thread."""

    def __init__(self, target: str) -> None:
        self._target = target
        self.count = 0
        self.status: grpc.StatusCode | None = None
        self._stop = threading.Event()
        self._call: Any = None
        self._started = threading.Event()

    def _run(self) -> None:
        with grpc.insecure_channel(self._target) as channel:
            method = channel.unary_stream(
                BOOK_SUMMARY,
                request_serializer=lambda _: b"",
                response_deserializer=Summary.FromString,
            )
            self._call = method(b"", timeout=120)
            self._started.set()
            try:
                for _ in self._call:
                    self.count += 1
                    if self._stop.is_set():
                        self._call.cancel()
                        return
            except grpc.RpcError as exc:
                self.status = exc.code()

    async def wait_more(self, n: int = 5) -> None:
        """Wait until ``n`` more Summaries arrived (the server kept serving this client)."""
        start = self.count
        with trio.fail_after(10):
            while self.count < start + n:  # noqa: ASYNC110 - a counter from another thread
                await trio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()


class watching:
    """Run a ``Watcher`` for the duration of the block (it must have received first)."""

    def __init__(self, target: str) -> None:
        self.watcher = Watcher(target)
        self._nursery_cm: Any = None

    async def __aenter__(self) -> Watcher:
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        nursery.start_soon(
            lambda: trio.to_thread.run_sync(self.watcher._run, abandon_on_cancel=True)
        )
        await self.watcher.wait_more(3)
        return self.watcher

    async def __aexit__(self, *exc: Any) -> bool | None:
        self.watcher.stop()
        result: bool | None = await self._nursery_cm.__aexit__(*exc)
        return result


@attrs.define
class Outcome:
    """What became of one stream (or of the whole connection)."""

    headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)
    trailers: list[tuple[bytes, bytes]] = attrs.field(factory=list)
    data: bytes = b""
    reset: int | None = None
    ended: bool = False

    @property
    def grpc_status(self) -> int | None:
        for name, value in [*self.headers, *self.trailers]:
            if name == b"grpc-status":
                return int(value)
        return None

    @property
    def http_status(self) -> int | None:
        for name, value in self.headers:
            if name == b":status":
                return int(value)
        return None


class RawH2:
    """An HTTP/2 client over a trio socket, with h2's outbound validation turned off."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config)
        self.outcomes: dict[int, Outcome] = {}
        self.goaway: int | None = None
        self.closed = False

    @classmethod
    async def connect(cls, port: int) -> RawH2:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        client = cls(sock)
        client.h2.initiate_connection()
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            await self.send_raw(data)

    async def send_raw(self, data: bytes) -> None:
        try:
            await self.sock.send(data)
        except OSError:
            self.closed = True

    def request(
        self,
        headers: Sequence[tuple[bytes, bytes]] = GRPC_HEADERS,
        body: bytes | None = b"\0\0\0\0\0",
    ) -> int:
        """Queue a request (``flush`` sends it); returns its stream id."""
        sid: int = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, list(headers), end_stream=body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=True)
        self.outcomes[sid] = Outcome()
        return sid

    async def pump(self, seconds: float, until: Any = None) -> None:
        """Read and answer for ``seconds`` (or until ``until()``, or the connection ends)."""
        with trio.move_on_after(seconds):
            while not self.closed and not (until is not None and until()):
                try:
                    data = await self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.closed = True
                    return
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.closed = True
                    return
                for event in events:
                    self._on(event)
                await self.flush()

    def _on(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        outcome = self.outcomes.setdefault(sid, Outcome()) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and outcome is not None:
            outcome.headers = list(event.headers)
        elif isinstance(event, h2.events.TrailersReceived) and outcome is not None:
            outcome.trailers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived) and outcome is not None:
            outcome.data += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and outcome is not None:
            outcome.ended = True
        elif isinstance(event, h2.events.StreamReset) and outcome is not None:
            outcome.reset = int(event.error_code)
            outcome.ended = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = int(event.error_code)

    def done(self, sid: int) -> bool:
        return self.outcomes[sid].ended

    def close(self) -> None:
        self.sock.close()


async def read_goaway(
    sock: trio.socket.SocketType, seconds: float = 5.0
) -> tuple[int | None, bool]:
    """Read raw frames until GOAWAY or EOF: (GOAWAY error code or None, connection closed)."""
    buffer = b""
    code = None
    with trio.move_on_after(seconds):
        while True:
            try:
                data = await sock.recv(65536)
            except OSError:
                return code, True
            if not data:
                return code, True
            buffer += data
            while len(buffer) >= 9:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < 9 + length:
                    break
                if buffer[3] == 0x7:
                    code = int.from_bytes(buffer[13:17], "big")
                buffer = buffer[9 + length :]
    return code, False


ENHANCE_YOUR_CALM = int(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)
