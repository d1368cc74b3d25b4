"""The running service: the nursery tree wired from an ``AppConfig``.

Per instrument (its own consolidated book)::

    feed(venue 1) ─┐
    feed(venue 2) ─┼─ memory channel ─> aggregator ─> SummaryPublisher ─┬─> BookSummary streams
    ...           ─┘                                                    ├─> v1 StreamBook streams
                                                                        └─> health (SERVING?)

gRPC addresses (``plan_servers``): the API address (top-level ``listen``) and
each address an instrument names for itself. Every address serves the whole
``dragonflybot.v1`` API (``BookService`` and ``LiquidityService`` for every
instrument), server reflection and health; the Keyrock ``BookSummary``, which
takes no argument, streams the address's default instrument: the first
instrument listening there (on the API address, the first instrument without an
address of its own).

The gRPC servers bind first, so a taken port fails the start before any venue
is contacted; then the feeds. The app never starts a simulator: ``--simulate``
(``cli.simulated``) starts one first and rewrites the venues' endpoints. Each feed is started with
``nursery.start`` (ready = subscribed, and synced in depth mode) from a task of
its own, so a venue that is slow to answer holds up neither the others nor the
server; readiness is logged and visible where clients look for it (the health
service, the stream's live venues).

With ``metrics_listen`` set, a Prometheus endpoint is bound right after the gRPC
servers (so a taken port fails the start just the same). It serves the App's own
registry, whose collector reads the counters of every feed, aggregator and
stream at scrape time (``dragonflybot.metrics``).

Shutdown (``App.shutdown``) is graceful first: the servers stop accepting and end
every stream with an ``UNAVAILABLE`` status, send GOAWAY and close their sockets;
after ``shutdown_grace`` seconds whatever remains (a client that stopped
reading) is cancelled with the rest of the tree.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import attrs
import trio
from prometheus_client.registry import CollectorRegistry

from dragonflybot.aggregator import Aggregator, AggregatorStats, BookState, Fanout
from dragonflybot.aggregator.liquidity import (
    LiquidityAggregator,
    LiquidityState,
    split_for_liquidity,
)
from dragonflybot.config import (
    DEFAULT_LISTEN,
    AppConfig,
    LimitsConfig,
    VenueConfig,
    api_bound,
    format_listen,
    parse_listen,
)
from dragonflybot.core.merge import Consolidated
from dragonflybot.core.view import VenueUpdate
from dragonflybot.errors import ConfigError, DragonflybotError
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.fix.config import accepted_sessions, session_limits, tls_context
from dragonflybot.fix.metrics import FixCollector
from dragonflybot.fix.server import FixInstrument, FixServer
from dragonflybot.instrument import canonical
from dragonflybot.metrics import build_registry, serve_metrics
from dragonflybot.service import (
    SERVICE_NAME,
    BookServiceV1,
    BookSummaryService,
    GrpcServer,
    HealthService,
    InstrumentSource,
    StreamStats,
    SummaryPublisher,
    book_v1,
    liquidity,
    reflection_servicers,
)
from dragonflybot.service.health import any_serving
from dragonflybot.service.liquidity import LadderSource, LiquidityService
from dragonflybot.service.security import TokenCheck, server_security
from dragonflybot.service.summary import EncodedBook
from dragonflybot.venues.registry import VENUES, lookup
from dragonflybot.venues.spec import VenueSpec

log = logging.getLogger("dragonflybot.app")

FEED_BUFFER = 64
"""Venue updates queued towards an aggregator before its feeds wait (they conflate meanwhile)."""


class FeedRunner(Protocol):
    """``dragonflybot.feed.run_feed``'s shape; tests substitute fake feeds."""

    def __call__(
        self,
        config: VenueConfig,
        instrument: str,
        depth: int,
        send: trio.MemorySendChannel[VenueUpdate],
        *,
        stats: FeedStats | None = None,
        venues: Mapping[str, VenueSpec] = VENUES,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> Awaitable[None]: ...


@attrs.frozen
class InstrumentPlan:
    """One instrument with every default resolved and every name checked."""

    name: str
    depth: int
    host: str
    port: int
    """The address its Keyrock ``BookSummary`` is looked for at: its own, else the API's."""
    venues: tuple[VenueConfig, ...]
    liquidity_depth: int | None = None
    """Ladder depth of the second (aggregated-liquidity) aggregator; None: not run."""
    own_address: bool = True
    """Whether it names an address of its own (``instruments[].listen``) apart from the API's."""

    @property
    def feed_depth(self) -> int:
        """Levels asked of each feed: enough for the BBO merge and for the ladder."""
        return max(self.depth, self.liquidity_depth or 0)


def default_feeds(config: AppConfig, venues: Mapping[str, VenueSpec] = VENUES) -> list[VenueConfig]:
    """The file's top-level venues, or every venue of ``venues`` with default settings."""
    if config.venues is not None:
        return config.venues
    return [VenueConfig(name=name) for name in venues]


def plan_topology(
    config: AppConfig, venues: Mapping[str, VenueSpec] = VENUES
) -> tuple[InstrumentPlan, ...]:
    """Resolve defaults, make instrument names canonical (``ETH-BTC``) and check venue
    names; ``ConfigError`` naming the key otherwise."""
    if not config.instruments:
        raise ConfigError("no instrument: pass --instrument or list [[instruments]]")
    plans = []
    for i, inst in enumerate(config.instruments):
        key = f"instruments[{i}]"
        try:
            name = canonical(inst.name)
        except ConfigError as exc:
            raise ConfigError(f"{key}.name: {exc}") from None
        feeds = default_feeds(config, venues) if inst.venues is None else inst.venues
        where = f"{key}.venues" if inst.venues is not None else "venues"
        if not feeds:
            raise ConfigError(f"{where}: instrument {name!r} has no venue")
        for j, venue in enumerate(feeds):
            try:
                spec = lookup(venue.name, venues)
            except ConfigError as exc:
                raise ConfigError(f"{where}[{j}].name: {exc}") from None
            try:
                # A protocol is a plain state machine: building one here checks what only
                # the venue knows (Bybit's depths, a symbol it cannot map) before anything
                # starts, instead of a feed dropping out of a running server.
                spec.create(venue, name)
            except ConfigError as exc:
                raise ConfigError(f"{where}[{j}]: {exc}") from None
        try:
            host, port = parse_listen(inst.listen or config.listen or DEFAULT_LISTEN)
        except ConfigError as exc:
            raise ConfigError(f"{key}.listen: {exc}") from None
        own = inst.listen is not None and not (
            api_bound(config)
            and port != 0
            and (host, port) == parse_listen(config.listen or DEFAULT_LISTEN)
        )
        depth = inst.depth if inst.depth is not None else config.depth
        liquidity = (
            inst.liquidity_depth if inst.liquidity_depth is not None else config.liquidity_depth
        )
        if liquidity is None and config.fix is not None:
            liquidity = depth
        plans.append(InstrumentPlan(name, depth, host, port, tuple(feeds), liquidity, own))
    return tuple(plans)


@attrs.frozen
class ServerPlan:
    """One gRPC address and the instrument its Keyrock ``BookSummary`` streams."""

    host: str
    port: int
    default: str
    """Canonical name of the address's default instrument."""
    instruments: tuple[str, ...]
    """The instruments whose address this is (the default first)."""
    api: bool
    """The API address (top-level ``listen``)."""


def plan_servers(config: AppConfig, plans: Sequence[InstrumentPlan]) -> tuple[ServerPlan, ...]:
    """The gRPC addresses to bind: the API address when ``api_bound``, then each
    instrument's own, in file order."""
    servers: list[ServerPlan] = []
    if api_bound(config) and plans:
        host, port = parse_listen(config.listen or DEFAULT_LISTEN)
        shared = tuple(p.name for p in plans if not p.own_address)
        default = shared[0] if shared else plans[0].name
        servers.append(ServerPlan(host, port, default, shared, True))
    for plan in plans:
        if plan.own_address:
            servers.append(ServerPlan(plan.host, plan.port, plan.name, (plan.name,), False))
    return tuple(servers)


class InstrumentRuntime:
    """What runs for one instrument, for callers to observe (ports, states, counters)."""

    def __init__(
        self,
        plan: InstrumentPlan,
        *,
        max_client_rate: float = 0.0,
        fed: Collection[str] | None = None,
    ) -> None:
        """``fed``: the venues of ``plan`` whose feeds this process runs (default: all);
        a process of the bus roles serves (or merges) venues fed elsewhere."""
        self.plan = plan
        self.publisher = SummaryPublisher()
        self.stream_stats = StreamStats()
        """Its Keyrock ``BookSummary`` streams."""
        self.v1_stats = StreamStats()
        """Its ``dragonflybot.v1`` ``StreamBook`` streams, on every address."""
        self.liquidity: Fanout[LiquidityState] | None = (
            Fanout() if plan.liquidity_depth is not None else None
        )
        """The ladder's fan-out (second aggregator), when the plan has a ladder depth."""
        self.keyrock = BookSummaryService(
            self.publisher.books, stats=self.stream_stats, max_rate=max_client_rate
        )
        self.server: GrpcServer | None = None
        """The server at its address (``plan.host``/``plan.port``); set by ``run_app``."""
        self.aggregator_stats = AggregatorStats()
        self.feed_stats: dict[str, FeedStats] = {
            v.name: FeedStats() for v in plan.venues if fed is None or v.name in fed
        }
        """One per venue fed here: ``_FeedGroup`` starts exactly these feeds."""

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def port(self) -> int:
        """The bound port of its address (the configured one, or the one picked for port 0)."""
        return self.server.port if self.server is not None else self.plan.port

    @property
    def address(self) -> str:
        if self.server is not None:
            return self.server.address
        return format_listen(self.plan.host, self.plan.port)

    @property
    def connection_count(self) -> int:
        """Connections to the server at its address (shared by the instruments there)."""
        return self.server.connection_count if self.server is not None else 0

    def source(self) -> InstrumentSource:
        """What the v1 ``BookService`` serves of it."""
        return InstrumentSource(
            self.name,
            tuple(v.name for v in self.plan.venues),
            self.plan.depth,
            self.publisher.books,
            stats=self.v1_stats,
        )

    def ladder(self) -> LadderSource | None:
        if self.liquidity is None or self.plan.liquidity_depth is None:
            return None
        return LadderSource(self.name, self.liquidity, self.plan.liquidity_depth)

    def latest(self) -> BookState | None:
        book = self.publisher.books.latest()
        return book.state if book is not None else None


def build_servers(
    servers: Sequence[ServerPlan],
    runtimes: Sequence[InstrumentRuntime],
    *,
    max_client_rate: float,
    serving: Fanout[bool],
    limits: LimitsConfig | None = None,
    tls: ssl.SSLContext | None = None,
    auth: TokenCheck | None = None,
    ladders_serving: Fanout[bool] | None = None,
) -> list[GrpcServer]:
    """One ``GrpcServer`` per address: v1, liquidity, health, reflection and the Keyrock
    service of its default instrument. Sets each runtime's ``server``.

    ``limits``, ``tls`` and ``auth`` apply to every address alike: a client reaches
    the same books on each, so no address may be weaker than another.

    ``serving``: whether any instrument of the process has a live venue (``""`` and
    the v1 services in health); the Keyrock service's health is its instrument's.
    ``ladders_serving``: the ``LiquidityService``'s, when its ladders have a liveness of
    their own (a gateway's come from the views, its books from an aggregator); else
    ``serving``.
    """
    by_name = {rt.name: rt for rt in runtimes}
    v1 = BookServiceV1([rt.source() for rt in runtimes], max_rate=max_client_rate)
    ladders = [ladder for rt in runtimes if (ladder := rt.ladder()) is not None]
    built = []
    for plan in servers:
        default = by_name[plan.default]
        services: list[Any] = [default.keyrock, v1]
        names = {SERVICE_NAME: default.publisher.serving, book_v1.SERVICE_NAME: serving}
        if ladders:
            services.append(LiquidityService(ladders, default=default.name))
            names[liquidity.SERVICE_NAME] = (
                ladders_serving if ladders_serving is not None else serving
            )
        services.append(HealthService(serving, services=names))
        server = GrpcServer(
            [*services, *reflection_servicers(services)],
            plan.host,
            plan.port,
            limits=limits,
            tls=tls,
            auth=auth,
        )
        for name in plan.instruments:
            by_name[name].server = server
        built.append(server)
    return built


class App:
    """Handle on a running service (what ``run_app`` reports when started)."""

    def __init__(
        self,
        instruments: Sequence[InstrumentRuntime],
        *,
        servers: Sequence[GrpcServer] = (),
        registry: CollectorRegistry | None = None,
        metrics_address: tuple[str, int] | None = None,
        fix_server: FixServer | None = None,
    ) -> None:
        self.instruments: Mapping[str, InstrumentRuntime] = MappingProxyType(
            {rt.name: rt for rt in instruments}
        )
        self.servers = tuple(servers)
        """Every gRPC server, the API address's first when it is bound."""
        self.registry = (
            registry if registry is not None else build_registry(instruments, self.servers)
        )
        """This app's own Prometheus registry (never the global one)."""
        self.metrics_address = metrics_address
        """``(host, bound port)`` of the ``/metrics`` endpoint, ``None`` when not served."""
        self.fix_server = fix_server
        """The FIX acceptor (its ``port`` is the bound one), ``None`` when not served."""
        self._stop = trio.Event()

    def shutdown(self) -> None:
        """Begin the graceful shutdown; ``run_app`` returns once it is done (idempotent)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def wait_stopping(self) -> None:
        await self._stop.wait()


async def run_app(
    config: AppConfig,
    *,
    venues: Mapping[str, VenueSpec] = VENUES,
    feed_runner: FeedRunner = run_feed,
    task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every instrument of ``config`` until ``App.shutdown()`` (or cancellation).

    Reports the ``App`` once every gRPC server is bound and every feed started.
    Raises ``ConfigError`` for a bad topology and ``ServiceError`` for an address
    that cannot be bound, before anything else starts. ``venues`` is where venue
    names are looked up (the registry; a test may run venues of its own). A
    ``[simulation]`` section is for the caller that starts the simulator
    (``dragonflybot.cli.simulated.run_with_simulation``): the app connects to the
    endpoints its configuration names, never to a simulator of its own.
    """
    if config.simulation is not None:
        raise ConfigError(
            "[simulation] is set: run through dragonflybot.cli.simulated.run_with_simulation "
            "(the CLI's --simulate), which starts the simulator and points the feeds at it"
        )
    plans = plan_topology(config, venues)
    tls, auth = server_security(config)
    runtimes = [InstrumentRuntime(plan, max_client_rate=config.max_client_rate) for plan in plans]
    serving: Fanout[bool] = Fanout()
    server_plans = plan_servers(config, plans)
    servers = build_servers(
        server_plans,
        runtimes,
        max_client_rate=config.max_client_rate,
        serving=serving,
        limits=config.limits,
        tls=tls,
        auth=auth,
    )
    registry = build_registry(runtimes, servers)
    async with trio.open_nursery() as nursery:
        for server_plan, server in zip(server_plans, servers, strict=True):
            await nursery.start(server.serve)
            log.info(
                "%s: dragonflybot.v1 for %s; Keyrock BookSummary streams %s",
                server.address,
                ", ".join(rt.name for rt in runtimes),
                server_plan.default,
                extra={"listen": server.address, "default_instrument": server_plan.default},
            )
        metrics_address: tuple[str, int] | None = None
        if config.metrics_listen is not None:
            host, port = parse_listen(config.metrics_listen)
            port = await nursery.start(serve_metrics, registry, host, port)
            metrics_address = (host, port)
        fix_server = _fix_server(config, runtimes)
        if fix_server is not None:
            await nursery.start(fix_server.serve)
            registry.register(FixCollector(fix_server))
        nursery.start_soon(
            any_serving, [rt.publisher.serving for rt in runtimes], serving, name="any-serving"
        )
        feeds = _FeedGroup()
        for rt in runtimes:
            send = _start_aggregator(nursery, rt)
            feeds.add(rt, send, feed_runner, venues)
        nursery.start_soon(feeds.run, name="feeds")
        app = App(
            runtimes,
            servers=servers,
            registry=registry,
            metrics_address=metrics_address,
            fix_server=fix_server,
        )
        task_status.started(app)
        await app.wait_stopping()
        log.info("shutting down")
        # Streams first (they end with a status, not because their book stopped), then
        # the feeds, whose WebSocket close handshakes run while the venues (or the
        # simulator) are still there to answer; both proceed concurrently.
        for server in servers:
            server.shutdown()
        if fix_server is not None:
            fix_server.shutdown()
        feeds.cancel()
        with trio.move_on_after(config.shutdown_grace):
            for server in servers:
                await server.wait_closed()
            if fix_server is not None:
                await fix_server.wait_closed()
            await feeds.wait_done()
        nursery.cancel_scope.cancel()


def _start_aggregator(
    nursery: trio.Nursery, rt: InstrumentRuntime
) -> trio.MemorySendChannel[VenueUpdate]:
    plan = rt.plan
    send, receive = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
    aggregator = Aggregator(plan.depth, rt.publisher, stats=rt.aggregator_stats)
    nursery.start_soon(aggregator.run, receive, name=f"aggregator:{plan.name}")
    nursery.start_soon(_log_live_venues, rt, name=f"health-log:{plan.name}")
    if rt.liquidity is not None and plan.liquidity_depth is not None:
        # The second aggregator reads the same feeds: their channel is tee'd to both.
        ladder = LiquidityAggregator(plan.liquidity_depth, rt.liquidity)
        send = split_for_liquidity(nursery, send, ladder, name=plan.name)
    return send


def _fix_server(config: AppConfig, runtimes: Sequence[InstrumentRuntime]) -> FixServer | None:
    """The FIX acceptor over every instrument's fan-outs, when ``[fix]`` is configured."""
    if config.fix is None:
        return None
    host, port = parse_listen(config.fix.listen)
    instruments = {
        rt.name: FixInstrument(
            rt.name,
            rt.publisher.books,
            _book_of,
            rt.plan.depth,
            rt.liquidity,
            rt.plan.liquidity_depth,
        )
        for rt in runtimes
    }
    return FixServer(
        instruments,
        accepted_sessions(config.fix),
        host,
        port,
        limits=session_limits(config.fix),
        ssl_context=tls_context(config.fix),
        send_timeout=config.fix.send_timeout,
    )


def _book_of(book: EncodedBook) -> Consolidated:
    """The consolidated book inside a published ``EncodedBook``."""
    return book.state.book


class _FeedGroup:
    """Every feed of the process, in one nursery of their own so they can be stopped first."""

    def __init__(self) -> None:
        self._feeds: list[tuple[str, Callable[..., Awaitable[Any]], FeedStats]] = []
        self._scope = trio.CancelScope()
        self._done = trio.Event()

    def add(
        self,
        rt: InstrumentRuntime,
        send: trio.MemorySendChannel[VenueUpdate],
        runner: FeedRunner,
        venues: Mapping[str, VenueSpec],
    ) -> None:
        plan = rt.plan
        for venue in plan.venues:
            stats = rt.feed_stats.get(venue.name)
            if stats is None:
                continue  # fed by another process
            run = functools.partial(
                runner, venue, plan.name, plan.feed_depth, send.clone(), stats=stats, venues=venues
            )
            self._feeds.append((f"feed:{plan.name}:{venue.name}", run, stats))
        # Each feed owns a clone and closes it; the aggregator ends once all are closed.
        send.close()

    async def run(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    for name, run, stats in self._feeds:
                        nursery.start_soon(_start_feed, nursery, name, run, stats, name=name)
        finally:
            self._done.set()

    def cancel(self) -> None:
        self._scope.cancel()

    async def wait_done(self) -> None:
        await self._done.wait()


async def _start_feed(
    nursery: trio.Nursery, name: str, run: Callable[..., Awaitable[Any]], stats: FeedStats
) -> None:
    """Start one feed with ``nursery.start``: ready means subscribed (and synced).

    Feeds start concurrently, each from its own task, so a venue that is slow to
    answer holds up neither the other venues nor the server (clients see readiness
    in the health service and in the stream's live venues).
    """
    try:
        await nursery.start(functools.partial(_contained, run, stats, name), name=name)
    except DragonflybotError:
        return  # already logged and counted by _contained
    log.info("feed ready: %s", name, extra={"venue": stats.venue or None})


@attrs.define
class _Readiness:
    """Passes ``started()`` through and remembers whether it was called."""

    inner: trio.TaskStatus[None]
    ready: bool = False

    def started(self, value: None = None) -> None:
        self.ready = True
        self.inner.started()


async def _contained(
    run: Callable[..., Awaitable[Any]],
    stats: FeedStats,
    name: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one feed so that its permanent failure costs only that venue.

    A feed gives up for good only when retrying cannot help (the venue rejects
    the symbol or stream). That is bad input for one venue, not a reason to stop
    serving the others: log it once, keep the venue marked down, carry on.
    """
    readiness = _Readiness(task_status)
    try:
        await run(task_status=readiness)
    except DragonflybotError as exc:
        stats.state = "down"
        stats.last_error = str(exc)
        # ``name`` is ``feed:INSTRUMENT:VENUE``: one line says which book lost which venue.
        _, instrument, venue = name.split(":", 2)
        log.error(
            "%s is out of the %s book for good (the others go on): %s",
            venue,
            instrument,
            exc,
            extra={"venue": venue, "instrument": instrument},
        )
        if not readiness.ready:
            raise  # ends the pending nursery.start in _start_feed


async def _log_live_venues(rt: InstrumentRuntime) -> None:
    """One log line whenever the set of merged venues changes: what an operator needs."""
    live: frozenset[str] | None = None
    with rt.publisher.books.subscribe() as books:
        async for book in books:
            if book.state.live != live:
                live = book.state.live
                names = ", ".join(sorted(live)) or "none"
                log.info(
                    "%s on %s: live venues: %s",
                    rt.name,
                    rt.address,
                    names,
                    extra={"instrument": rt.name, "live": sorted(live)},
                )
