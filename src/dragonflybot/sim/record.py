"""Recording a venue's raw traffic to a capture file, as a feed would see it.

The recorder drives the feed's own sans-I/O venue protocol (``dragonflybot.venues``): it
sends the subscribe frames the protocol asks for and fetches the REST snapshots it asks for,
so a capture holds exactly the conversation a real feed has with the venue — real or
simulated — with receive timestamps (``time.time_ns()`` taken as each frame arrives).

Disk writes happen in a separate task through ``trio.to_thread``, in batches, so a slow
disk never delays the socket reads whose timestamps are being recorded.
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
import certifi
import httpx
import msgspec
import trio
import trio_websocket

from dragonflybot.config import Mode, VenueConfig
from dragonflybot.errors import ConfigError, TransportError
from dragonflybot.instrument import canonical
from dragonflybot.sim.capture import CaptureRecord, CaptureWriter, RecordKind
from dragonflybot.venues import registry
from dragonflybot.venues.base import FetchSnapshot, SendText, VenueProtocol
from dragonflybot.venues.spec import VenueSpec

log = logging.getLogger(__name__)

TOOL: Final = "dragonflybot record"
_QUEUE: Final = 100_000


@attrs.frozen
class RecordOptions:
    venue: str
    instrument: str
    output: str
    mode: Mode = "depth"
    ws_url: str | None = None
    rest_url: str | None = None
    duration: float | None = None
    """Stop after this many seconds (``None``: until cancelled or the venue closes)."""
    count: int | None = None
    """Stop after this many received frames."""
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    """Give up when the venue sends nothing for this long."""
    rest_timeout: float = 10.0


@attrs.define
class RecordStats:
    frames: int = 0
    rest: int = 0
    records: int = 0


def _ssl_context(url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


class _Recorder:
    def __init__(
        self,
        options: RecordOptions,
        spec: VenueSpec,
        protocol: VenueProtocol,
        sink: trio.MemorySendChannel[CaptureRecord],
        stats: RecordStats,
    ) -> None:
        self.options = options
        self.spec = spec
        self.protocol = protocol
        self.sink = sink
        self.stats = stats
        self.ws_url = protocol.ws_url
        self._fetched_extra = False

    def put(self, kind: RecordKind, url: str, payload: bytes, time_ns: int | None = None) -> None:
        record = CaptureRecord(kind, time.time_ns() if time_ns is None else time_ns, url, payload)
        try:
            self.sink.send_nowait(record)
        except trio.WouldBlock:
            raise TransportError("capture writer fell too far behind the venue") from None

    async def run(self, http: httpx.AsyncClient) -> None:
        options = self.options
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(options.connect_timeout):
                    ws = await trio_websocket.connect_websocket_url(
                        nursery, self.ws_url, ssl_context=_ssl_context(self.ws_url)
                    )
            except (OSError, trio_websocket.HandshakeError, trio.TooSlowError) as exc:
                raise TransportError(f"cannot connect to {self.ws_url}: {exc}") from exc
            self.put(RecordKind.CONNECT, self.ws_url, b"")
            try:
                await self._converse(ws, http, nursery)
            finally:
                # Close before cancelling: the socket's reader task lives in this nursery and
                # must see the venue's close reply.
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await ws.aclose()
                nursery.cancel_scope.cancel()

    async def _converse(
        self, ws: trio_websocket.WebSocketConnection, http: httpx.AsyncClient, nursery: trio.Nursery
    ) -> None:
        options = self.options
        await self._handle(self.protocol.connection_made(), ws, http, nursery)
        while options.count is None or self.stats.frames < options.count:
            with trio.move_on_after(options.idle_timeout) as idle:
                try:
                    message = await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    self.put(RecordKind.DISCONNECT, self.ws_url, str(exc.reason).encode())
                    return
            if idle.cancelled_caught:
                raise TransportError(
                    f"{self.ws_url}: nothing received for {options.idle_timeout} s"
                )
            received = time.time_ns()
            payload = message.encode() if isinstance(message, str) else message
            self.put(RecordKind.WS_IN, self.ws_url, payload, received)
            self.stats.frames += 1
            await self._handle(self.protocol.receive(message), ws, http, nursery)
            if not self._fetched_extra and self.protocol.mode == "top" and self.protocol.subscribed:
                self._fetched_extra = True
                extra = self.spec.capture_snapshot(self.protocol)
                if extra is not None:
                    nursery.start_soon(self._fetch, extra, ws, http, nursery, False)

    async def _handle(
        self,
        events: Sequence[object],
        ws: trio_websocket.WebSocketConnection,
        http: httpx.AsyncClient,
        nursery: trio.Nursery,
    ) -> None:
        for event in events:
            if isinstance(event, SendText):
                self.put(RecordKind.WS_OUT, self.ws_url, event.text.encode())
                try:
                    await ws.send_message(event.text)
                except trio_websocket.ConnectionClosed as exc:
                    raise TransportError(f"{self.ws_url}: closed while sending") from exc
            elif isinstance(event, FetchSnapshot):
                nursery.start_soon(self._fetch, event, ws, http, nursery, True)

    async def _fetch(
        self,
        event: FetchSnapshot,
        ws: trio_websocket.WebSocketConnection,
        http: httpx.AsyncClient,
        nursery: trio.Nursery,
        answer: bool,
    ) -> None:
        await trio.sleep(event.delay)
        try:
            with trio.fail_after(self.options.rest_timeout):
                response = await http.get(event.url, params=dict(event.params))
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            log.warning("REST snapshot %s failed: %s", event.url, exc)
            if answer:
                await self._handle(
                    self.protocol.snapshot_received(event.token, b""), ws, http, nursery
                )
            return
        self.put(RecordKind.REST, str(response.url), response.content)
        self.stats.rest += 1
        if answer:
            events = self.protocol.snapshot_received(event.token, response.content)
            await self._handle(events, ws, http, nursery)


def _drain(source: trio.MemoryReceiveChannel[CaptureRecord], limit: int) -> list[CaptureRecord]:
    batch: list[CaptureRecord] = []
    while len(batch) < limit:
        try:
            batch.append(source.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
    return batch


async def _write_records(
    writer: CaptureWriter, source: trio.MemoryReceiveChannel[CaptureRecord]
) -> None:
    try:
        async for first in source:
            batch = [first, *_drain(source, 10_000)]
            await trio.to_thread.run_sync(writer.write_many, batch)
    finally:
        # Cancelled (Ctrl-C, duration): what was received is still written.
        writer.write_many(_drain(source, _QUEUE))
        source.close()


async def record(
    options: RecordOptions,
    *,
    stats: RecordStats | None = None,
    venues: Mapping[str, VenueSpec] = registry.VENUES,
) -> RecordStats:
    """Record one venue to ``options.output`` until the duration, count, cancellation or
    the venue closing the connection. Every record received before the end is on disk
    when this returns (or is cancelled); ``stats`` (if given) is kept up to date, so a
    caller that cancels still has the counts."""
    spec = registry.lookup(options.venue, venues)
    # The capture's metadata names the instrument canonically however the caller spelt it.
    options = attrs.evolve(options, instrument=canonical(options.instrument))
    venue_config = VenueConfig(
        name=options.venue, mode=options.mode, ws_url=options.ws_url, rest_url=options.rest_url
    )
    protocol = spec.create(venue_config, options.instrument)
    try:
        writer = await trio.to_thread.run_sync(CaptureWriter.open, options.output)
    except OSError as exc:
        raise ConfigError(f"cannot write {options.output!r}: {exc}") from exc
    sink, source = trio.open_memory_channel[CaptureRecord](_QUEUE)
    recorder = _Recorder(options, spec, protocol, sink, stats or RecordStats())
    meta = {
        "venue": options.venue,
        "instrument": options.instrument,
        "mode": options.mode,
        "tool": TOOL,
    }
    recorder.put(RecordKind.META, "", msgspec.json.encode(meta))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_write_records, writer, source)
            async with sink:
                with trio.move_on_after(options.duration if options.duration else math.inf):
                    async with httpx.AsyncClient() as http:
                        await recorder.run(http)
    finally:
        writer.close()
        recorder.stats.records = writer.records
    return recorder.stats
