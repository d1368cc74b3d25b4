"""One client connection of a simulated venue: its queue of frames, a reader and a writer.

The market driver (or a replay) never waits on a client: it appends frames to the
connection's ``Outbox`` and moves on. The writer takes everything queued at once, applies
the venue's faults and sends the batch. The reader answers control frames through the same
queue, so an ack always goes out before the first data frame of its subscription. A client
that falls ``max_pending`` frames behind is dropped, as real venues drop slow consumers.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import Final, Protocol

import trio

from dragonflybot.errors import TransportError
from dragonflybot.sim.faults import NO_FAULTS, Faults, FaultState
from dragonflybot.sim.frames import FrameKind, Outgoing, stamped
from dragonflybot.sim.protocol import Key, Session, VenueProtocol
from dragonflybot.sim.transport import ServerSocket

log = logging.getLogger(__name__)

BATCH: Final = 4096
"""Most frames one writer pass takes (and, with the lean backend, one socket write)."""
MAX_CONNECTION_AGE: Final = 24 * 3600.0
"""Binance closes every connection after 24 h; the simulator does the same for both."""


class Outbox:
    """Frames queued for one connection, taken by its writer a batch at a time."""

    __slots__ = ("_frames", "_idle", "_wake", "overflow_at")

    def __init__(self, overflow_at: int) -> None:
        self._frames: deque[Outgoing] = deque()
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.overflow_at = overflow_at

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def overflowed(self) -> bool:
        return len(self._frames) > self.overflow_at

    def put(self, frame: Outgoing) -> None:
        self._frames.append(frame)
        self._wake.set()
        if self._idle.is_set():
            self._idle = trio.Event()

    def put_many(self, frames: Iterable[Outgoing]) -> None:
        self._frames.extend(frames)
        if self._frames:
            self._wake.set()
            if self._idle.is_set():
                self._idle = trio.Event()

    async def take(self, limit: int = BATCH) -> list[Outgoing]:
        """Wait for frames; return up to ``limit`` of them, oldest first."""
        while not self._frames:
            self._idle.set()
            await self._wake.wait()
            self._wake = trio.Event()
        frames = self._frames
        if len(frames) <= limit:
            batch = list(frames)
            frames.clear()
        else:
            batch = [frames.popleft() for _ in range(limit)]
        return batch

    def written(self) -> None:
        """The writer sent everything it took: wake those waiting for an empty queue."""
        if not self._frames:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until every queued frame has been written (or dropped with the connection)."""
        await self._idle.wait()

    def close(self) -> None:
        self._frames.clear()
        self._idle.set()


class ConnectionHost(Protocol):
    """What a connection needs from its venue server."""

    @property
    def protocol(self) -> VenueProtocol: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def stamp_send_time(self) -> bool: ...

    def subscribe(self, conn: ClientConnection, key: Key) -> None: ...

    def unsubscribe(self, conn: ClientConnection, key: Key) -> None: ...

    def written(self, frames: list[Outgoing], messages: int) -> None:
        """``frames`` were processed (sent, or skipped by a fault) as ``messages`` messages."""
        ...

    def time_ms(self) -> int: ...


class ClientConnection:
    """A subscribed client: ``run`` serves it until either side closes."""

    def __init__(
        self,
        host: ConnectionHost,
        socket: ServerSocket,
        session: Session,
        *,
        index: int,
        seed: int,
        max_pending: int,
    ) -> None:
        self.host = host
        self.socket = socket
        self.session = session
        self.index = index
        self.outbox = Outbox(max_pending)
        protocol = host.protocol
        self.faults_state = FaultState(
            random.Random(f"faults:{seed}:{protocol.name}:{index}"),
            lambda variant, frame: protocol.garbage(session, variant, frame),
            lambda: protocol.reconnect_notice(session, host.time_ms()),
            protocol.corrupt_book,
        )
        self.subscribed = trio.Event()
        """Set at the first subscription (replay playback starts from it)."""
        self._cancel = trio.CancelScope()
        self._tokens = 0.0
        self._tokens_at = 0.0

    def subscribe(self, keys: Iterable[Key]) -> None:
        for key in keys:
            if key not in self.session.keys:
                self.session.keys[key] = None
                self.host.subscribe(self, key)
                self.subscribed.set()

    def unsubscribe(self, keys: Iterable[Key]) -> None:
        for key in keys:
            if self.session.keys.pop(key, 0) is None:
                self.host.unsubscribe(self, key)

    async def run(
        self, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the client; reports the connection's nursery (for per-connection tasks)."""
        try:
            with self._cancel, trio.move_on_after(MAX_CONNECTION_AGE):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader)
                    nursery.start_soon(self._writer)
                    task_status.started(nursery)
        finally:
            self.unsubscribe(list(self.session.keys))
            self.outbox.close()
            with trio.CancelScope(shield=True):
                await self.socket.aclose(1000, "")

    def close(self) -> None:
        """End the connection (the socket is closed by ``run``)."""
        self._cancel.cancel()

    async def _close_later(self, delay: float) -> None:
        await trio.sleep(delay)
        self.close()

    async def _reader(self) -> None:
        protocol = self.host.protocol
        try:
            while True:
                text = await self.socket.receive()
                reaction = protocol.on_text(self.session, text, self.host.faults)
                self.unsubscribe(reaction.unsubscribe)
                # Replies first: a venue whose snapshot is sent on subscription (queued by
                # ``subscribe``) acknowledges before the snapshot, as the real ones do.
                self.outbox.put_many(Outgoing(r, FrameKind.CONTROL) for r in reaction.replies)
                self.subscribe(reaction.subscribe)
        except TransportError:
            self.close()

    async def _writer(self) -> None:
        host = self.host
        outbox = self.outbox
        decide = self.faults_state.decide
        protocol = host.protocol
        numbered = protocol.numbers_frames
        session = self.session
        async with trio.open_nursery() as later:
            while True:
                throttle = host.faults.max_frames_per_second
                limit = await self._allowance(throttle) if throttle else BATCH
                frames = await outbox.take(limit)
                if throttle:
                    self._tokens -= len(frames)
                if outbox.overflowed:
                    log.info(
                        "%s client %d: over %d frames behind, dropped",
                        host.protocol.name,
                        self.index,
                        outbox.overflow_at,
                    )
                    await self.socket.abort()
                    self.close()
                    return
                faults = host.faults
                stamp = host.stamp_send_time
                if faults is NO_FAULTS and not numbered and not stamp:
                    # Nothing to decide or rewrite per frame: the batch goes out as queued
                    # (a replay as fast as possible spends its time here).
                    self.faults_state.passed(len(frames))
                    await self._flush([frame.text for frame in frames], frames)
                    outbox.written()
                    continue
                texts: list[str] = []
                done: list[Outgoing] = []
                for frame in frames:
                    if numbered:
                        # Numbered before the faults decide: a frame a gap fault omits
                        # still takes its number, so the client sees the gap.
                        frame = protocol.number(session, frame)
                    for action, value in decide(frame, faults):
                        if isinstance(value, str):
                            texts.append(value)
                        elif isinstance(value, Outgoing):
                            texts.append(stamped(frame, time.time_ns()) if stamp else frame.text)
                        elif action == "stall":
                            await self._flush(texts, done)
                            await trio.sleep(value)
                        elif value:
                            later.start_soon(self._close_later, value)
                        else:
                            done.append(frame)
                            await self._flush(texts, done)
                            await self.socket.abort()
                            self.close()
                            return
                    done.append(frame)
                await self._flush(texts, done)
                outbox.written()

    async def _flush(self, texts: list[str], done: list[Outgoing]) -> None:
        if texts:
            try:
                await self.socket.send_many(texts)
            except TransportError:
                self.close()
                await trio.lowlevel.checkpoint()
                return
        if done or texts:
            self.host.written(done, len(texts))
        texts.clear()
        done.clear()

    async def _allowance(self, rate: float) -> int:
        """Token bucket: wait until at least one frame may go out; how many may."""
        burst = max(1.0, rate / 10)
        while True:
            now = trio.current_time()
            self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= 1 - 1e-9:  # float dust must not turn into a zero-length sleep
                return max(1, int(self._tokens + 1e-9))
            await trio.sleep(max((1 - self._tokens) / rate, 1e-6))
