"""Where the bus is and how to talk to it: the one module that builds coredis clients.

A bus is named by a URL: ``redis://host:port`` (or ``rediss://`` for TLS) for
one Redis server, ``redis+cluster://host:port`` (``rediss+cluster://``) for a
Redis Cluster reached through any of its nodes. On a cluster the bus uses
sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``): a message goes only to the node
owning its subject's slot, so the stream scales with the nodes instead of being
broadcast to all of them.

Commands (``GET``/``MGET`` of latest values, the cluster topology, the
publisher's writes on a cluster) go through coredis. The two hot paths have
their own trio sockets (``open_pubsub_stream``): the subscriber reads its
channels parsed by ``pubsub_wire`` (coredis's pub/sub path cost about five
times what the bus does with a message), and on one Redis server the publisher
sends its script calls through ``script_wire`` (coredis's command path was most
of what a hop still cost).

coredis's own retries are switched off: the bus's publisher and subscriber
retry whole sessions with ``client.backoff.Backoff``, so that "the bus is down"
is one visible state rather than commands quietly stalling in a retry loop.
"""

from __future__ import annotations

import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
import attrs
import coredis
import coredis.exceptions
import trio
from coredis._utils import hash_slot
from coredis.retry import NoRetryPolicy

from dragonflybot.bus.pubsub_wire import BusProtocolError
from dragonflybot.bus.subjects import BusNames
from dragonflybot.client.backoff import Backoff
from dragonflybot.errors import ConfigError

_SCHEMES: Final = {
    "redis": (False, False),
    "rediss": (False, True),
    "redis+cluster": (True, False),
    "rediss+cluster": (True, True),
}

Client = Any
"""A ``coredis.Redis`` or ``coredis.RedisCluster`` (bytes responses)."""


@attrs.frozen
class BusConfig:
    """A bus address plus the deadlines and reconnect schedule every role uses with it."""

    host: str
    port: int
    cluster: bool = False
    tls: bool = False
    db: int = 0
    names: BusNames = attrs.field(factory=BusNames)
    timeout: float = attrs.field(default=2.0)
    """Deadline (s) on every network wait: connect, command, subscribe."""
    backoff_base: float = 0.05
    backoff_cap: float = 5.0

    @timeout.validator
    def _check_timeout(self, _attribute: object, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"bus timeout must be positive, got {value}")

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "dfb", timeout: float = 2.0) -> BusConfig:
        """Parse ``redis://host:port[/db]`` or ``redis+cluster://host:port``."""
        parts = urlsplit(url)
        kind = _SCHEMES.get(parts.scheme)
        if kind is None:
            raise ConfigError(
                f"bus URL {url!r}: scheme must be one of {', '.join(sorted(_SCHEMES))}"
            )
        cluster, tls = kind
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigError(f"bus URL {url!r}: bad port") from exc
        if not parts.hostname:
            raise ConfigError(f"bus URL {url!r} has no host")
        path = parts.path.strip("/")
        if path and (cluster or not path.isdigit()):
            raise ConfigError(f"bus URL {url!r}: the path may only be a database number")
        return cls(
            parts.hostname,
            port,
            cluster=cluster,
            tls=tls,
            db=int(path or 0),
            names=BusNames(prefix),
            timeout=timeout,
        )

    @property
    def url(self) -> str:
        scheme = ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")
        return f"{scheme}://{self.host}:{self.port}" + (f"/{self.db}" if self.db else "")

    def new_backoff(self) -> Backoff:
        return Backoff(self.backoff_base, self.backoff_cap, reset_after=1.0)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS settings of every connection to the bus (``None`` without TLS): the
        system's CAs, certificate and host name checked, for commands and pub/sub alike."""
        return ssl.create_default_context() if self.tls else None


@asynccontextmanager
async def open_client(config: BusConfig) -> AsyncIterator[Client]:
    """A client whose commands fail (coredis errors) within ``config.timeout`` when Redis
    does not answer; connections are made on first use."""
    common: dict[str, Any] = {
        "connect_timeout": config.timeout,
        "stream_timeout": config.timeout,
        "retry_policy": NoRetryPolicy(),
        "ssl": config.tls,
        "ssl_context": config.tls_context(),
    }
    client: Client
    if config.cluster:
        client = coredis.RedisCluster(config.host, config.port, **common)
    else:
        client = coredis.Redis(config.host, config.port, db=config.db, **common)
    # No cancel scope around entering: the pool opens a task group there, which
    # must not straddle a scope. Its connect and read timeouts are the deadlines.
    async with client:
        yield client


async def open_pubsub_stream(config: BusConfig, host: str, port: int) -> trio.abc.Stream:
    """A connection to ``host:port`` for the subscriber's pub/sub reader or the
    publisher's script calls, within ``config.timeout`` (TLS handshake included).
    Nothing is selected (pub/sub is not per database; the publisher sends its own
    ``SELECT``); the caller closes it."""
    with trio.fail_after(config.timeout):
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        context = config.tls_context()
        if context is not None:
            tls = trio.SSLStream(stream, context, server_hostname=host)
            try:
                await tls.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            stream = tls
    return stream


async def channels_by_node(
    config: BusConfig, client: Client, channels: Sequence[str]
) -> dict[tuple[str, int], list[str]]:
    """Which node to subscribe each channel on: the bus's own server, or on a cluster
    the primary owning the channel's slot (sharded pub/sub delivers only there).

    The topology is read afresh (``CLUSTER SLOTS``) for every session, so a session
    after a failover or a resharding subscribes where the slots now are; a channel
    whose slot moved meanwhile is refused (``MOVED``) or dropped by its old node,
    which ends the session and leads here again.
    """
    if not config.cluster:
        return {(config.host, config.port): list(channels)}
    with trio.fail_after(config.timeout):
        ranges = await client.cluster_slots()
    # With a node down coredis can hand back the node's error as the answer instead
    # of raising it: the topology is unknown then, which is a bus failure like any.
    if isinstance(ranges, BaseException):
        raise BusClusterError(f"cluster topology unavailable: {describe(ranges)}") from ranges
    if not isinstance(ranges, Mapping):
        raise BusClusterError(f"unexpected CLUSTER SLOTS answer: {type(ranges).__name__}")
    owners: list[tuple[int, int, tuple[str, int]]] = []
    for (low, high), nodes in ranges.items():
        if nodes:
            host = str(nodes[0]["host"])
            # A node that does not know its own address reports "" or "?" (Redis 7):
            # it is then the one this client asked, at the address it was given.
            if host in ("", "?"):
                host = config.host
            owners.append((int(low), int(high), (host, int(nodes[0]["port"]))))
    by_node: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    for channel in channels:
        slot = hash_slot(channel.encode())
        node = next((n for low, high, n in owners if low <= slot <= high), None)
        if node is None:
            raise BusClusterError(f"no cluster node serves slot {slot} (channel {channel})")
        by_node[node].append(channel)
    return dict(by_node)


class BusClusterError(coredis.exceptions.RedisClusterError):
    """The cluster's topology leaves a channel's slot without a node (a bus failure)."""


def queue_publish(config: BusConfig, pipe: Any, channel: str, data: bytes) -> None:
    """Queue a publish of ``data`` on ``channel`` in ``pipe`` (sharded on a cluster)."""
    if config.cluster:
        pipe.spublish(channel, data)
    else:
        pipe.publish(channel, data)


_FAILURES: Final = (
    coredis.exceptions.RedisError,
    BusProtocolError,
    OSError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


def is_bus_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or every leaf of an exception group) means "Redis failed us".

    Those end a session and lead to a reconnect; anything else (a bug, and above
    all ``trio.Cancelled``) propagates.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_bus_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, _FAILURES)


def describe(exc: BaseException) -> str:
    """A one-line account of a bus failure for the logs (the first leaf of a group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
