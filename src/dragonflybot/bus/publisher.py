"""The publishing side of the bus: latest-value slots in, Redis writes out.

``publish(subject, body)`` never waits: it overwrites the subject's pending slot
(conflation, as ``aggregator.Fanout`` does for readers), so a slow or absent
Redis can neither stall a feed nor make it queue history; it only means fewer,
newer messages. The ``run`` task drains the slots in batches, one pipeline per
batch: for each subject ``SET`` the latest-value key and ``PUBLISH`` (``SPUBLISH``
on a cluster) the same bytes, in that order on one connection, so a consumer
that sees message *n* on the channel finds at least *n* in the key.

Sequence numbers are assigned when a message is written, so conflated values
leave no gaps. A write that fails may or may not have reached Redis; its
numbers are used up anyway, and consumers see a gap and read the latest value.

After every (re)connect the last written value of every subject is written
again: a Redis that restarted without persistence has lost the keys, and a
consumer starting now must find them.

On one Redis server the script calls go over the publisher's own trio socket
(``script_wire``: hiredis packs and parses, calls are pipelined, ``NOSCRIPT`` is
answered by loading the script and retrying): coredis's command path was most of
what a bus hop still cost (docs/scaling.md). On a Redis Cluster the batch is
split per node by coredis's pipeline as before: a lean path there would need the
slot map kept current across ``MOVED``/``ASK`` redirections, which coredis
already does, and was left for later.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import attrs
import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.bus import codec
from dragonflybot.bus.codec import Body, HeartbeatMsg
from dragonflybot.bus.connection import (
    BusConfig,
    describe,
    is_bus_failure,
    open_client,
    open_pubsub_stream,
    queue_publish,
)
from dragonflybot.bus.pubsub_wire import BusProtocolError
from dragonflybot.bus.script_wire import ScriptPipeline
from dragonflybot.bus.subjects import feed_subject
from dragonflybot.client.backoff import Backoff
from dragonflybot.errors import BusError, ConfigError

log = logging.getLogger(__name__)

PUBLISH_BATCH: Final = """
local n = #KEYS
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i])
  redis.call('PUBLISH', ARGV[n + i], ARGV[i])
end
return n
"""
"""SET each key and PUBLISH the same bytes on its channel, atomically, in one call."""

BATCH_LIMIT = 512
"""Subjects per pipeline: bounds one round trip's size after a reconnect republishes all."""

IN_FLIGHT_LIMIT = 8
"""Script calls sent and not yet answered on the lean connection; past it the writer
waits (within the deadline) for replies, so a slow Redis means conflation, not memory."""

RECEIVE_SIZE = 65536


@attrs.define
class PublisherStats:
    published: int = 0
    """Messages written (each one SET + PUBLISH)."""
    batches: int = 0
    conflated: int = 0
    """Values replaced in their slot before they were written."""
    failures: int = 0
    """Sessions that ended on a bus failure."""
    script_reloads: int = 0
    """Times Redis had lost the publish script (``NOSCRIPT``) and it was loaded again."""


class BusPublisher:
    """Writes the newest body of each subject to the bus; one per process is enough.

    ``run`` owns the connection; ``status`` says whether it is connected (a
    ``Fanout[bool]``: ``latest()`` now, or subscribe to the flips). ``close``
    lets ``run`` write what is pending and return. With ``refresh_after`` a
    subject that has not changed for that long is written again (new sequence,
    same body): an aggregator's books change only with the market, and a
    gateway tells a quiet market from a dead aggregator by these refreshes.
    """

    def __init__(
        self,
        config: BusConfig,
        *,
        epoch: int | None = None,
        backoff: Backoff | None = None,
        refresh_after: float | None = None,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if refresh_after is not None and not refresh_after > 0:
            raise ConfigError(f"refresh_after must be positive, got {refresh_after}")
        self.config = config
        self.refresh_after = refresh_after
        """Rewrite a subject unchanged for this long (s): its consumers' sign of life."""
        self.epoch = epoch if epoch is not None else time.time_ns()
        """This run's identity in every message (see ``sequence``)."""
        self.stats = PublisherStats()
        self.status: Fanout[bool] = Fanout()
        self.status.publish(False)
        self._backoff = backoff if backoff is not None else config.new_backoff()
        self._wall_clock = wall_clock
        self._pending: dict[str, Body] = {}
        self._written: dict[str, Body] = {}
        self._written_at: dict[str, float] = {}
        self._seq: dict[str, int] = {}
        self._wake = trio.Event()
        self._closed = False
        self._started = False
        self._task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED

    @property
    def connected(self) -> bool:
        return bool(self.status.latest())

    def publish(self, subject: str, body: Body) -> None:
        """Make ``body`` the subject's next message (replacing one not yet written)."""
        if self._closed:
            raise BusError("publish on a closed bus publisher")
        if subject in self._pending:
            self.stats.conflated += 1
        self._pending[subject] = body
        self._wake.set()

    def close(self) -> None:
        """No more ``publish``; ``run`` returns once the pending values are written
        (or at once while the bus is down: those values are dropped)."""
        self._closed = True
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, write, reconnect with backoff; started once the first connection is up."""
        self._task_status = task_status
        try:
            while True:
                try:
                    if self.config.cluster:
                        done = await self._coredis_session()
                    else:
                        done = await self._lean_session()
                    if done:
                        return
                except BaseException as exc:
                    if not is_bus_failure(exc):
                        raise
                    await self._disconnected(exc)
                    if self._closed:
                        log.warning(
                            "bus publisher closed while down: %d values dropped", len(self._pending)
                        )
                        return
        finally:
            self.status.publish(False)
            self.status.close()

    def _up(self) -> None:
        """A session is ready to write: restore every subject's latest value (lost if Redis
        restarted; a newer pending value of a subject wins over its old one), say so."""
        self._pending = {**self._written, **self._pending}
        self._connected()
        if not self._started:
            self._started = True
            self._task_status.started()

    async def _coredis_session(self) -> bool:
        """A session through coredis (a cluster: its pipeline splits a batch per node)."""
        async with open_client(self.config) as client:
            with trio.fail_after(self.config.timeout):
                await client.ping()
            self._up()

            async def write(batch: dict[str, Body]) -> None:
                await self._write_pipeline(client, batch)

            return await self._write_loop(write)

    async def _lean_session(self) -> bool:
        """A session on the publisher's own socket: script calls pipelined, replies read
        by a second task. True once closed and every call sent has been answered."""
        config = self.config
        stream = await open_pubsub_stream(config, config.host, config.port)
        async with stream:
            link = _ScriptLink(self, stream)
            await link.handshake()
            self._up()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link.read_replies)
                await self._write_loop(link.send)
                await link.drain()
                nursery.cancel_scope.cancel()
        return True

    async def _write_loop(self, write: Callable[[dict[str, Body]], Awaitable[None]]) -> bool:
        """Write batches until closed (True) or a bus failure (raises)."""
        while True:
            if not self._pending:
                if self._closed:
                    return True
                with trio.move_on_at(self._refresh_due()):
                    await self._wake.wait()
                    self._wake = trio.Event()
                self._queue_refreshes()
                continue
            batch: dict[str, Body] = {}
            for subject in list(self._pending)[:BATCH_LIMIT]:
                batch[subject] = self._pending.pop(subject)
            try:
                await write(batch)
            except BaseException:
                # Back into the slots unless something newer arrived meanwhile.
                self._pending = {**batch, **self._pending}
                raise

    def _encode(self, batch: dict[str, Body]) -> tuple[list[str], list[bytes], list[str]]:
        """Keys, messages (numbered now) and channels of a batch, in the batch's order."""
        names = self.config.names
        sent_ns = self._wall_clock()
        seqs = self._seq
        keys: list[str] = []
        messages: list[bytes] = []
        channels: list[str] = []
        for subject, body in batch.items():
            seq = seqs.get(subject, 0) + 1
            seqs[subject] = seq
            keys.append(names.key(subject))
            messages.append(codec.encode(subject, self.epoch, seq, sent_ns, body))
            channels.append(names.channel(subject))
        return keys, messages, channels

    def _mark_written(self, batch: dict[str, Body]) -> None:
        self._written.update(batch)
        now = trio.current_time()
        for subject in batch:
            self._written_at[subject] = now

    def _acknowledged(self, count: int) -> None:
        self.stats.published += count
        self.stats.batches += 1

    async def _write_pipeline(self, client: Any, batch: dict[str, Body]) -> None:
        config = self.config
        keys, messages, channels = self._encode(batch)
        with trio.fail_after(config.timeout):
            # Subjects live on different nodes: coredis splits the pipeline per node
            # and keeps each subject's SET before its SPUBLISH on one connection.
            async with client.pipeline(transaction=False) as pipe:
                for key, data, channel in zip(keys, messages, channels, strict=True):
                    pipe.set(key, data)
                    queue_publish(config, pipe, channel, data)
        self._mark_written(batch)
        self._acknowledged(len(batch))

    def _refresh_due(self) -> float:
        if self.refresh_after is None or not self._written_at:
            return math.inf
        return min(self._written_at.values()) + self.refresh_after

    def _queue_refreshes(self) -> None:
        if self.refresh_after is None:
            return
        cutoff = trio.current_time() - self.refresh_after
        for subject, at in self._written_at.items():
            if at <= cutoff and subject not in self._pending:
                self._pending[subject] = self._written[subject]

    def _connected(self) -> None:
        self._backoff.connected(trio.current_time())
        if not self.status.latest():
            log.info("bus publisher connected to %s", self.config.url)
            self.status.publish(True)

    async def _disconnected(self, exc: BaseException) -> None:
        self.stats.failures += 1
        if self.status.latest():
            self.status.publish(False)
        self._backoff.disconnected(trio.current_time())
        delay = self._backoff.next_delay()
        log.warning(
            "bus publisher: %s unreachable (%s); retrying in %.2f s",
            self.config.url,
            describe(exc),
            delay,
        )
        if not self._closed:
            await trio.sleep(delay)


class _ScriptLink:
    """One lean session's socket: the writer sends script calls, ``read_replies`` reads
    the answers. Sends (the writer's calls, the reader's NOSCRIPT retries) take turns
    under one lock, so the bytes reach Redis in the order ``ScriptPipeline`` recorded."""

    def __init__(self, publisher: BusPublisher, stream: trio.abc.Stream) -> None:
        self._publisher = publisher
        self._stream = stream
        self._timeout = publisher.config.timeout
        self._wire = ScriptPipeline(PUBLISH_BATCH)
        self._send_lock = trio.Lock()
        self._answered = trio.Event()
        self._read_scope = trio.CancelScope()

    async def handshake(self) -> None:
        """SELECT and SCRIPT LOAD, answered before any batch is written (the liveness check)."""
        with trio.fail_after(self._timeout):
            await self._stream.send_all(self._wire.handshake(self._publisher.config.db))
            while self._wire.in_flight:
                await self._feed(await self._receive())

    async def send(self, batch: dict[str, Body]) -> None:
        """Send one batch's script call; waits (within the deadline) only when
        ``IN_FLIGHT_LIMIT`` calls are unanswered."""
        publisher = self._publisher
        keys, messages, channels = publisher._encode(batch)
        with trio.fail_after(self._timeout):
            while self._wire.in_flight >= IN_FLIGHT_LIMIT:
                await self._answered.wait()
            async with self._send_lock:
                data = self._wire.call(keys, [*messages, *channels])
                # Written as far as a reconnect is concerned: if the reply never comes,
                # the next session writes this value again.
                publisher._mark_written(batch)
                await self._stream.send_all(data)
        if self._read_scope.deadline == math.inf:
            self._read_scope.deadline = trio.current_time() + self._timeout

    async def drain(self) -> None:
        """Wait (within the deadline) for the replies to every call sent."""
        with trio.fail_after(self._timeout):
            while self._wire.in_flight:
                await self._answered.wait()

    async def read_replies(self) -> None:
        """Read and match every reply until the session ends (raises on a bus failure)."""
        while True:
            await self._feed(await self._receive())

    async def _receive(self) -> bytes:
        # While a reply is owed, each read has the deadline; idle, the read only
        # notices a closed connection (``send`` arms the deadline on the next call).
        with trio.CancelScope() as scope:
            self._read_scope = scope
            if self._wire.in_flight:
                scope.deadline = trio.current_time() + self._timeout
            data = await self._stream.receive_some(RECEIVE_SIZE)
        if scope.cancelled_caught:
            raise trio.TooSlowError(f"no reply from Redis within {self._timeout} s")
        if not data:
            raise BusProtocolError("Redis closed the connection")
        return bytes(data)

    async def _feed(self, data: bytes) -> None:
        async with self._send_lock:
            replies = self._wire.feed(data)
            if replies.resend:
                self._publisher.stats.script_reloads += replies.reloads
                log.warning(
                    "bus publisher: Redis had lost the publish script; loaded it again "
                    "and resent the calls in flight"
                )
                with trio.fail_after(self._timeout):
                    await self._stream.send_all(replies.resend)
        for count in replies.acknowledged:
            self._publisher._acknowledged(count)
        if replies.acknowledged or not self._wire.in_flight:
            self._answered.set()
            self._answered = trio.Event()


async def run_heartbeats(
    publisher: BusPublisher,
    venues: Iterable[str],
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish each venue's heartbeat every ``interval`` s, for as long as the task runs.

    A feed process runs this beside its feeds: consumers mark a venue stale when
    neither a view nor a heartbeat arrives for their ``stale_after``, so it must
    be well above ``interval`` (three times is the usual choice).
    """
    if not interval > 0:
        raise ConfigError(f"heartbeat interval must be positive, got {interval}")
    beats = [(feed_subject(v), HeartbeatMsg(v, max(1, round(interval * 1000)))) for v in venues]
    task_status.started()
    while True:
        for subject, beat in beats:
            publisher.publish(subject, beat)
        await trio.sleep(interval)
