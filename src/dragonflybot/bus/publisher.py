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
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
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
    queue_publish,
)
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


@attrs.define
class PublisherStats:
    published: int = 0
    """Messages written (each one SET + PUBLISH)."""
    batches: int = 0
    conflated: int = 0
    """Values replaced in their slot before they were written."""
    failures: int = 0
    """Sessions that ended on a bus failure."""


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
        self._script: Any = None

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
        started = False
        try:
            while True:
                try:
                    async with open_client(self.config) as client:
                        with trio.fail_after(self.config.timeout):
                            await client.ping()
                        # Restore every subject's latest value (lost if Redis restarted);
                        # a newer pending value of a subject wins over its old one.
                        self._pending = {**self._written, **self._pending}
                        if not self.config.cluster:
                            self._script = client.register_script(PUBLISH_BATCH)
                        self._connected()
                        if not started:
                            task_status.started()
                            started = True
                        if await self._write_loop(client):
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

    async def _write_loop(self, client: Any) -> bool:
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
                await self._write(client, batch)
            except BaseException:
                # Back into the slots unless something newer arrived meanwhile.
                self._pending = {**batch, **self._pending}
                raise

    async def _write(self, client: Any, batch: dict[str, Body]) -> None:
        config = self.config
        names = config.names
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
        with trio.fail_after(config.timeout):
            if config.cluster:
                # Subjects live on different nodes: coredis splits the pipeline per node
                # and keeps each subject's SET before its SPUBLISH on one connection.
                async with client.pipeline(transaction=False) as pipe:
                    for key, data, channel in zip(keys, messages, channels, strict=True):
                        pipe.set(key, data)
                        queue_publish(config, pipe, channel, data)
            else:
                # One server: the whole batch in one script call. A command costs the
                # client far more than the server, so one call instead of two per
                # message roughly triples what a publisher can push (docs/scaling.md).
                await self._script(keys=keys, args=messages + channels)
        self._written.update(batch)
        now = trio.current_time()
        for subject in batch:
            self._written_at[subject] = now
        self.stats.published += len(batch)
        self.stats.batches += 1

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
