"""The consuming side of the bus: subjects' messages, in order, into a memory channel.

A session subscribes first and reads the subjects' latest values second, so
nothing published in between is lost: a message can then arrive twice (in the
key and on the channel), and the per-subject ``SequenceTracker`` drops what is
not newer. A message that skips sequence numbers is delivered and followed by a
read of the subject's latest value, in case something newer was lost as well.

The channels are read over the subscriber's own trio sockets, one per node
(the bus's server, or on a cluster each primary owning some of the subjects'
slots, with ``SSUBSCRIBE``), parsed by ``pubsub_wire`` (hiredis); coredis
serves the commands (``MGET``/``GET`` of latest values, the cluster topology).
One ``receive_some`` hands over every message that arrived meanwhile, so a busy
subscriber pays one scheduler round per read rather than per message. While the
delivery channel is full the socket is not read: Redis then holds the backlog
(and disconnects a subscriber beyond its ``client-output-buffer-limit pubsub``,
which reconnects and starts again from the latest values) instead of the
process buffering it without bound.

Every network wait has a deadline. A quiet connection is sent a ``PING`` every
``idle_check`` seconds and must answer within ``timeout``, so a Redis that
vanished without closing the connection is noticed. Any bus failure ends the
session: ``status`` turns False (a gateway reports NOT_SERVING, an aggregator
treats its venues as stale), the task waits out a ``Backoff`` delay and starts
a new session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Final

import attrs
import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.bus.codec import BusCodec, BusMessage
from dragonflybot.bus.connection import (
    BusConfig,
    Client,
    channels_by_node,
    describe,
    is_bus_failure,
    open_client,
    open_pubsub_stream,
)
from dragonflybot.bus.pubsub_wire import PING, PubSubReader, subscribe_command
from dragonflybot.bus.sequence import SequenceTracker, Verdict
from dragonflybot.client.backoff import Backoff
from dragonflybot.errors import ConfigError

log = logging.getLogger(__name__)

LATEST_CHUNK = 1000
"""Keys per ``MGET`` on connect, and channels per ``SUBSCRIBE``: each request stays small."""

RECEIVE_SIZE: Final = 1 << 16
"""Bytes per socket read: a few hundred views when a backlog waits."""


@attrs.define
class _Link:
    """One subscribed connection: its stream, its reply parser, its node for the logs."""

    stream: trio.abc.Stream
    reader: PubSubReader
    node: str


@attrs.frozen(slots=True)
class Received:
    """One delivered message and how it arrived."""

    message: BusMessage
    from_latest: bool
    """Read from the subject's latest-value key (on connect or after a gap), not the
    stream: it may be old, so liveness rules judge it by ``message.sent_ns``."""
    recv_ns: int
    """``time.monotonic_ns()`` at delivery."""


@attrs.define
class SubscriberStats:
    received: int = 0
    """Messages read off the channel or a key (before decoding)."""
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0
    latest_reads: int = 0
    """Latest-value reads (one per subject per session, plus one per gap)."""
    foreign: int = 0
    """Valid messages whose subject this subscriber did not ask for (skipped)."""
    sessions: int = 0
    failures: int = 0


class BusSubscriber:
    """Delivers the messages of ``subjects`` to ``send`` as ``Received``, newest-only per subject.

    ``run`` closes ``send`` when it ends (it ends only when cancelled). ``status``
    is True while a session is subscribed and has read the latest values.
    """

    def __init__(
        self,
        config: BusConfig,
        subjects: Iterable[str],
        send: trio.MemorySendChannel[Received],
        *,
        idle_check: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.subjects = tuple(dict.fromkeys(subjects))
        if not self.subjects:
            raise ConfigError("a bus subscriber needs at least one subject")
        if not idle_check > 0:
            raise ConfigError(f"idle_check must be positive, got {idle_check}")
        self._send = send
        self._idle_check = idle_check
        self._backoff = backoff if backoff is not None else config.new_backoff()
        self._wanted = frozenset(self.subjects)
        self.codec = BusCodec()
        self.tracker = SequenceTracker()
        self.stats = SubscriberStats()
        self.status: Fanout[bool] = Fanout()
        self.status.publish(False)

    @property
    def connected(self) -> bool:
        return bool(self.status.latest())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sessions until cancelled; started once the first session has read the latest values."""
        started = False
        try:
            async with self._send:
                while True:
                    try:
                        async with open_client(self.config) as client, AsyncExitStack() as stack:
                            links = await self._open_session(client, stack)
                            if not started:
                                task_status.started()
                                started = True
                            async with trio.open_nursery() as nursery:
                                for link in links:
                                    nursery.start_soon(self._read_loop, client, link)
                    except BaseException as exc:
                        if not is_bus_failure(exc):
                            raise
                        await self._disconnected(exc)
        finally:
            self.status.publish(False)
            self.status.close()

    async def _open_session(self, client: Client, stack: AsyncExitStack) -> list[_Link]:
        config = self.config
        names = config.names
        channels = [names.channel(s) for s in self.subjects]
        links: list[_Link] = []
        for (host, port), node_channels in (
            await channels_by_node(config, client, channels)
        ).items():
            stream = await open_pubsub_stream(config, host, port)
            stack.push_async_callback(trio.aclose_forcefully, stream)
            link = _Link(stream, PubSubReader(), f"{host}:{port}")
            await self._subscribe(client, link, node_channels)
            links.append(link)
        # Subscribed first, read second: whatever is published in between is in
        # both places, and the tracker drops the copy that is not newer.
        subjects = self.subjects
        for start in range(0, len(subjects), LATEST_CHUNK):
            chunk = subjects[start : start + LATEST_CHUNK]
            with trio.fail_after(config.timeout):
                values = await client.mget([names.key(s) for s in chunk])
            self.stats.latest_reads += len(chunk)
            for data in values:
                if data is not None:
                    await self._handle(client, data, from_latest=True)
        self.stats.sessions += 1
        self._backoff.connected(trio.current_time())
        if not self.status.latest():
            log.info("bus subscriber on %s: %d subjects", config.url, len(self.subjects))
            self.status.publish(True)
        return links

    async def _subscribe(self, client: Client, link: _Link, channels: Sequence[str]) -> None:
        """Subscribe ``link`` to ``channels`` and wait (with a deadline) for every
        confirmation; messages that arrive meanwhile are handled afterwards, not dropped
        (outside the deadline: a full delivery channel is back-pressure, not a failure)."""
        sharded = self.config.cluster
        reader = link.reader
        # ``SSUBSCRIBE`` takes channels of one slot only, and each subject is its own
        # hash tag: one request per channel there, all sent at once.
        step = 1 if sharded else LATEST_CHUNK
        request = b"".join(
            subscribe_command(channels[i : i + step], sharded=sharded)
            for i in range(0, len(channels), step)
        )
        reader.expect_confirmations(len(channels))
        early: list[bytes] = []
        with trio.fail_after(self.config.timeout):
            await link.stream.send_all(request)
            while reader.unconfirmed > 0:
                data = await link.stream.receive_some(RECEIVE_SIZE)
                if not data:
                    raise trio.BrokenResourceError(f"Redis at {link.node} closed the connection")
                early += reader.feed(data)
        for payload in early:
            await self._handle(client, payload, from_latest=False)

    async def _read_loop(self, client: Client, link: _Link) -> None:
        stream = link.stream
        feed = link.reader.feed
        handle = self._handle
        idle = self._idle_check
        timeout = self.config.timeout
        while True:
            with trio.move_on_after(idle) as quiet:
                data = await stream.receive_some(RECEIVE_SIZE)
            if quiet.cancelled_caught:
                # Anything read within the deadline (the pong, or a message sent
                # meanwhile) proves the connection and the server alive.
                with trio.fail_after(timeout):
                    await stream.send_all(PING)
                    data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError(f"Redis at {link.node} closed the connection")
            for payload in feed(data):
                await handle(client, payload, from_latest=False)

    async def _handle(self, client: Client, data: bytes, *, from_latest: bool) -> None:
        stats = self.stats
        stats.received += 1
        message = self.codec.decode(data, where="bus latest value" if from_latest else "bus")
        if message is None:
            return
        subject = message.subject
        if subject not in self._wanted:
            stats.foreign += 1
            return
        verdict = self.tracker.check(subject, message.epoch, message.seq)
        if verdict is Verdict.STALE:
            stats.duplicates += 1
            return
        stats.delivered += 1
        received = Received(message, from_latest, time.monotonic_ns())
        try:
            # No checkpoint while the channel has room: under load a scheduler round
            # per message here costs more than everything else the bus does with it.
            self._send.send_nowait(received)
        except trio.WouldBlock:
            await self._send.send(received)
        if verdict is Verdict.GAP:
            stats.gaps += 1
            stats.latest_reads += 1
            with trio.fail_after(self.config.timeout):
                latest = await client.get(self.config.names.key(subject))
            if latest is not None:
                await self._handle(client, latest, from_latest=True)

    async def _disconnected(self, exc: BaseException) -> None:
        self.stats.failures += 1
        if self.status.latest():
            self.status.publish(False)
        self._backoff.disconnected(trio.current_time())
        delay = self._backoff.next_delay()
        log.warning(
            "bus subscriber: %s unreachable (%s); retrying in %.2f s",
            self.config.url,
            describe(exc),
            delay,
        )
        await trio.sleep(delay)
