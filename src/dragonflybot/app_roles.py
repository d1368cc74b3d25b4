"""The service split into roles over the Redis bus: topology is configuration (issue 12).

In one process (``app.run_app``) the layers talk through channels::

    feeds ──(views)──> aggregator ──(books)──> gRPC server

A process started with roles runs some of those layers; each of the two links
whose ends run here stays a channel, and each link with only one end here is
swapped for the bus (``dragonflybot.bus``): the producer's side for an outlet,
the consumer's side for an ingest with liveness::

    feed:       feeds ─> ViewOutlet ─> view.<venue>.<INSTRUMENT> + heartbeats on feed.<venue>
    aggregate:  view ingest (ViewGate) ─> aggregator ─> BookOutlet ─> book.<INSTRUMENT>
    serve:      book ingest (BookGate) ─> SummaryPublisher ─> gRPC (BookSummary, health, ...)

A gateway binds the same addresses as ``run_app`` (``app.plan_servers``: the API
address with ``dragonflybot.v1`` BookService, health and reflection for every
instrument, then each instrument's own address) and serves everything a single
process serves: with a ladder depth (``liquidity_depth``, or ``[fix]``) the
``LiquidityService`` and, with ``[fix]``, the FIX acceptor. The ladder's
topology::

    serve:      one subscriber per instrument: book.<INSTRUMENT>, view.<venue>.<INSTRUMENT>,
                feed.<venue> ─┬─ books ─> BookGate ─> SummaryPublisher ─> gRPC, FIX (BBO)
                              └─ views ─> ViewGate ─> LiquidityAggregator ─> LiquidityService,
                                                                             FIX (ladder)

Each gateway runs the ladder aggregator itself, from the venue views the feeds
already publish, rather than the aggregate role publishing ladders on a subject
of their own, because:

- a cost-to-trade answer walks the venue views, not the ladder (the ladder's
  ``liquidity_depth`` prices hold fewer levels than the views), so a ladder
  subject would have to carry every view again: the views subjects already are
  that message, published once per venue change;
- liveness comes for free and is the same rule as the merge's: the ``ViewGate``
  turns a feed process that stopped heartbeating, a down notice or a bus outage
  into ``VenueDown``, so no ladder ever sums a view from a dead process and the
  ladder is empty (no live venue) while the bus is down; a ladder subject would
  need a gate, a staleness rule and a codec kind of its own;
- the layers stay as they are: ``LiquidityAggregator`` is the one ``run_app``
  runs, only the queue in front of it changed (a bus ingest instead of the tee
  of the feeds' channel), and the aggregate role does no work nobody reads;
- the cost is a gateway's inbound traffic (every venue's view of its
  instruments instead of one book each) and a ladder step per view on every
  replica, about what an aggregator pays per view (measured and sized in
  docs/scaling.md): ladders belong on the instruments that need them, served by
  gateway groups over instrument ranges.

Where the aggregator runs in the serving process (``aggregate`` + ``serve``),
the ladder taps the aggregator's input as in ``run_app``. Every role plans from
the same file, so the feeds publish views ``InstrumentPlan.feed_depth`` deep,
enough for the ladder (the gateway takes no depth flags of its own with
``--bus``). A gateway lists and streams every instrument of the file with all
of its venues (``ListInstruments``, ``StreamBook``; an instrument outside the
file is NOT_FOUND, as in one process): the file describes the deployment, so
there is nothing to discover on the bus.

Roles combine (``feed`` + ``aggregate`` in one process is the in-process
feeds->aggregator channel with books on the bus). The layers themselves do not
change: an outlet is the same synchronous, never-waiting ``publish`` the channel
ends offered, and an ingest feeds the same channel or ``Publisher`` an
in-process producer would. Only ``links`` below decides which kind of queue
each link is.

The bus tasks are started without waiting for Redis: a role whose Redis is away
at start comes up anyway (a gateway answers NOT_SERVING, an aggregator has no
live venue) and connects with backoff, exactly as after a Redis restart.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Collection, Mapping, Sequence

import attrs
import trio

from dragonflybot.aggregator import Aggregator, Fanout
from dragonflybot.aggregator.aggregator import Publisher
from dragonflybot.aggregator.liquidity import (
    LiquidityAggregator,
    LiquidityState,
    split_for_liquidity,
)
from dragonflybot.aggregator.state import BookState
from dragonflybot.app import (
    FEED_BUFFER,
    App,
    FeedRunner,
    InstrumentPlan,
    InstrumentRuntime,
    _FeedGroup,
    _fix_server,
    _log_live_venues,
    build_servers,
    plan_servers,
    plan_topology,
)
from dragonflybot.bus import (
    BookGate,
    BookOutlet,
    BusConfig,
    BusPublisher,
    BusSubscriber,
    Received,
    ViewGate,
    ViewOutlet,
    book_subject,
    feed_subject,
    run_book_ingest,
    run_heartbeats,
    run_view_ingest,
    view_subject,
)
from dragonflybot.bus.codec import BookMsg
from dragonflybot.config import AppConfig, BusSettings, parse_listen
from dragonflybot.core.view import VenueDown, VenueUpdate
from dragonflybot.errors import ConfigError
from dragonflybot.feed import run_feed
from dragonflybot.fix.metrics import FixCollector
from dragonflybot.metrics import build_registry, serve_metrics
from dragonflybot.metrics.bus import BusCollector, BusEndpoint
from dragonflybot.service.health import any_serving
from dragonflybot.service.security import server_security
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec

log = logging.getLogger("dragonflybot.roles")

INGEST_BUFFER = 256
"""Bus deliveries queued towards an ingest task (the subscriber conflates nothing, so
this only absorbs bursts such as the latest values read on connect)."""


class Role(enum.Enum):
    FEED = "feed"
    AGGREGATE = "aggregate"
    SERVE = "serve"


@attrs.frozen
class Roles:
    """What this process runs, and on which bus the rest of the deployment is."""

    roles: frozenset[Role]
    bus: BusSettings
    feed_venues: frozenset[str] | None = None
    """``feed`` role: run only these venues of each instrument (``None``: every one);
    the other venues' feeds run in other processes."""

    def __attrs_post_init__(self) -> None:
        if not self.roles:
            raise ConfigError("a process needs at least one role")


def bus_config(settings: BusSettings) -> BusConfig:
    """``[bus]`` -> the connection settings every bus client of the process uses."""
    try:
        base = BusConfig.from_url(settings.url, prefix=settings.prefix, timeout=settings.timeout)
    except ConfigError as exc:
        raise ConfigError(f"bus.url: {exc}") from None
    return attrs.evolve(base, backoff_cap=max(settings.backoff_cap, base.backoff_base))


def check_feed_venues(plans: Sequence[InstrumentPlan], wanted: Collection[str]) -> None:
    """Every venue asked for feeds some instrument: a typo is an error, not an idle process."""
    known = {v.name for plan in plans for v in plan.venues}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ConfigError(
            f"--venues: {', '.join(unknown)} not in any instrument's venues "
            f"({', '.join(sorted(known)) or 'none'})"
        )


class _TeePublisher:
    """Both an in-process ``Publisher`` and the bus: a book served here and elsewhere."""

    def __init__(self, *publishers: Publisher) -> None:
        self._publishers = publishers

    def publish(self, state: BookState, /) -> None:
        for publisher in self._publishers:
            publisher.publish(state)

    def close(self) -> None:
        for publisher in self._publishers:
            publisher.close()


class _Wiring:
    """Each link of each instrument made a channel or a bus outlet/ingest, per the roles.

    Holds the process's bus clients (one publisher shared by every outlet, one
    subscriber per ingest) and the endpoints the metrics collector reads.
    """

    def __init__(
        self,
        roles: Roles,
        nursery: trio.Nursery,
        bus_nursery: trio.Nursery,
        feed_runner: FeedRunner,
        venues: Mapping[str, VenueSpec],
    ) -> None:
        self.settings = roles.bus
        self.config = bus_config(roles.bus)
        self.feeding = Role.FEED in roles.roles
        self.aggregating = Role.AGGREGATE in roles.roles
        self.serving = Role.SERVE in roles.roles
        self._nursery = nursery
        self._bus_nursery = bus_nursery
        self.publisher: BusPublisher | None = None
        self.endpoints: list[BusEndpoint] = []
        self.view_outlets: list[tuple[ViewOutlet, tuple[str, ...]]] = []
        self.feeds = _FeedGroup()
        self._feed_runner = feed_runner
        self._venues = venues

    def instrument(self, plan: InstrumentPlan, rt: InstrumentRuntime) -> None:
        """Wire one instrument: the books link, the views link and (served here) the ladder."""
        if self.serving:
            self._nursery.start_soon(_log_live_venues, rt, name=f"health-log:{plan.name}")
        ladder = self._ladder(rt)
        if not self.aggregating:
            if self.serving:
                self._serve_from_bus(plan, rt.publisher, ladder)
            if self.feeding:
                send, receive = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
                self._views_to_bus(plan.name, tuple(rt.feed_stats), receive)
                self.feeds.add(rt, send, self._feed_runner, self._venues)
            return
        books: Publisher = BookOutlet(self.bus_publisher(), plan.name)
        if self.serving:
            # Served here too: other gateways can serve the same book from the bus.
            books = _TeePublisher(rt.publisher, books)
        send, receive = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
        aggregator = Aggregator(plan.depth, books, stats=rt.aggregator_stats)
        self._nursery.start_soon(aggregator.run, receive, name=f"aggregator:{plan.name}")
        if ladder is not None:
            # As in run_app: the ladder reads the BBO aggregator's input, tee'd.
            send = split_for_liquidity(self._nursery, send, ladder, name=plan.name)
        if self.feeding:
            self.feeds.add(rt, send, self._feed_runner, self._venues)
        else:
            self._views_from_bus(plan, send)

    def _ladder(self, rt: InstrumentRuntime) -> LiquidityAggregator | None:
        """The instrument's liquidity aggregator, run where it is served (module docstring)."""
        depth = rt.plan.liquidity_depth
        if not self.serving or rt.liquidity is None or depth is None:
            return None
        return LiquidityAggregator(depth, rt.liquidity)

    def _serve_from_bus(
        self, plan: InstrumentPlan, publisher: Publisher, ladder: LiquidityAggregator | None
    ) -> None:
        """A gateway's ingest: the consolidated book and, with a ladder, the venue views.

        One subscriber per instrument takes every subject; its deliveries are split by
        kind between the ``BookGate`` (books) and a ``ViewGate`` (views, down notices,
        heartbeats) in front of the local ``LiquidityAggregator``, so the ladder obeys
        the same liveness rules as the aggregator role's merge.
        """
        subjects = [book_subject(plan.name)]
        if ladder is not None:
            subjects += _view_subjects(plan)
        subscriber, deliveries = self._subscriber(plan.name, subjects)
        book_deliveries = deliveries
        if ladder is not None:
            book_send, book_deliveries = trio.open_memory_channel[Received](INGEST_BUFFER)
            view_send, view_deliveries = trio.open_memory_channel[Received](INGEST_BUFFER)
            self._bus_nursery.start_soon(
                _split_deliveries,
                deliveries,
                book_send,
                view_send,
                name=f"bus-split:{plan.name}",
            )
            updates_send, updates = trio.open_memory_channel[VenueUpdate](FEED_BUFFER)
            self._nursery.start_soon(ladder.run, updates, name=f"liquidity:{plan.name}")
            view_gate = ViewGate(plan.name, self.settings.stale_after)
            self._bus_nursery.start_soon(
                functools.partial(
                    run_view_ingest, view_gate, view_deliveries, subscriber.status, updates_send
                ),
                name=f"view-ingest:{plan.name}",
            )
        gate = BookGate(plan.name, self.settings.stale_after)
        self._bus_nursery.start_soon(
            functools.partial(run_book_ingest, gate, book_deliveries, subscriber.status, publisher),
            name=f"book-ingest:{plan.name}",
        )

    def _views_from_bus(
        self, plan: InstrumentPlan, send: trio.MemorySendChannel[VenueUpdate]
    ) -> None:
        subscriber, deliveries = self._subscriber(plan.name, _view_subjects(plan))
        gate = ViewGate(plan.name, self.settings.stale_after)
        self._bus_nursery.start_soon(
            functools.partial(run_view_ingest, gate, deliveries, subscriber.status, send),
            name=f"view-ingest:{plan.name}",
        )

    def _views_to_bus(
        self,
        instrument: str,
        venues: tuple[str, ...],
        receive: trio.MemoryReceiveChannel[VenueUpdate],
    ) -> None:
        outlet = ViewOutlet(self.bus_publisher(), instrument)
        self.view_outlets.append((outlet, venues))
        self._nursery.start_soon(_forward_views, receive, outlet, name=f"views-out:{instrument}")

    def bus_publisher(self) -> BusPublisher:
        if self.publisher is None:
            self.publisher = BusPublisher(self.config, refresh_after=self.settings.refresh_after)
            self.endpoints.append(BusEndpoint("publisher", "", publisher=self.publisher))
        return self.publisher

    def _subscriber(
        self, instrument: str, subjects: Sequence[str]
    ) -> tuple[BusSubscriber, trio.MemoryReceiveChannel[Received]]:
        send, receive = trio.open_memory_channel[Received](INGEST_BUFFER)
        idle_check = min(1.0, self.settings.stale_after / 3)
        subscriber = BusSubscriber(self.config, subjects, send, idle_check=idle_check)
        self.endpoints.append(BusEndpoint("subscriber", instrument, subscriber=subscriber))
        self._bus_nursery.start_soon(subscriber.run, name=f"bus-subscriber:{instrument}")
        return subscriber, receive

    def start_publishing(self) -> trio.Event | None:
        """Start the shared publisher (and the feed role's heartbeats); the event is set
        once the publisher has written what was pending at ``close``."""
        publisher = self.publisher
        if publisher is None:
            return None
        done = trio.Event()

        async def run() -> None:
            try:
                await publisher.run()
            finally:
                done.set()

        self._bus_nursery.start_soon(run, name="bus-publisher")
        if self.view_outlets:
            venues = sorted({v for _, names in self.view_outlets for v in names})
            self._bus_nursery.start_soon(
                functools.partial(
                    run_heartbeats, publisher, venues, self.settings.heartbeat_interval
                ),
                name="bus-heartbeats",
            )
        return done

    def say_goodbye(self) -> None:
        """The feed role stopping: its venues leave the merges at once, not after
        ``stale_after``."""
        for outlet, venues in self.view_outlets:
            for venue in venues:
                outlet.publish(VenueDown(venue, "feed process stopped"))


def _view_subjects(plan: InstrumentPlan) -> list[str]:
    """What a views ingest of ``plan`` reads: each venue's view and its feed's heartbeats."""
    subjects = [view_subject(v.name, plan.name) for v in plan.venues]
    return subjects + [feed_subject(v.name) for v in plan.venues]


async def _split_deliveries(
    receive: trio.MemoryReceiveChannel[Received],
    books: trio.MemorySendChannel[Received],
    views: trio.MemorySendChannel[Received],
) -> None:
    """A gateway subscriber's deliveries: consolidated books to one ingest, the rest
    (views, down notices, heartbeats) to the other; both end when it does.

    Nothing is dropped (a lost view of a quiet venue would leave an old one in the
    ladder), so a ladder that falls behind holds up the books too; its aggregator
    then takes every queued view in one batch and builds once, which makes the
    cost per view fall as the load rises (docs/scaling.md, "the ladder on a
    gateway")."""
    async with receive, books, views:
        async for received in receive:
            target = books if isinstance(received.message.body, BookMsg) else views
            await target.send(received)


async def _any_ladder_live(ladders: Sequence[Fanout[LiquidityState]], out: Fanout[bool]) -> None:
    """Publish to ``out`` whether any ladder has a live venue: the ``LiquidityService``'s
    health. A gateway's ladders and books have different sources (the feeds' views, an
    aggregator's books), so one can be live while the other is not."""
    latest = [False] * len(ladders)

    async def follow(i: int, ladder: Fanout[LiquidityState]) -> None:
        with ladder.subscribe() as states:
            async for state in states:
                latest[i] = bool(state.live)
                if out.latest() is not any(latest):
                    out.publish(any(latest))

    try:
        async with trio.open_nursery() as nursery:
            for i, ladder in enumerate(ladders):
                nursery.start_soon(follow, i, ladder)
    finally:
        out.close()


async def _forward_views(
    receive: trio.MemoryReceiveChannel[VenueUpdate], outlet: ViewOutlet
) -> None:
    """The feed role's end of the views link: each update onto the bus as it comes."""
    async with receive:
        async for update in receive:
            outlet.publish(update)


async def run_roles(
    config: AppConfig,
    roles: Roles,
    *,
    venues: Mapping[str, VenueSpec] = VENUES,
    feed_runner: FeedRunner = run_feed,
    task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run this process's roles of ``config`` until ``App.shutdown()`` (or cancellation).

    Reports the ``App`` once its gRPC servers (``serve``) and metrics endpoint are
    bound and its feeds started; like ``run_app`` a bad topology or an address
    that cannot be bound fails before anything else starts.
    """
    if config.simulation is not None:
        raise ConfigError(
            "[simulation] is set: run through dragonflybot.cli.simulated.run_with_simulation"
        )
    # The plans keep their ladder depth: feeds publish views deep enough for it
    # (``InstrumentPlan.feed_depth``), and the serve role runs the ladder.
    plans = plan_topology(config, venues)
    if roles.feed_venues is not None:
        check_feed_venues(plans, roles.feed_venues)
    bus_config(roles.bus)  # a bad URL fails here, before anything starts
    feeding = Role.FEED in roles.roles
    serving = Role.SERVE in roles.roles
    tls, auth = server_security(config) if serving else (None, None)
    # Every runtime has its whole plan (a gateway lists and serves every venue of it); only
    # the venues fed here get feeds and feed stats.
    fed = roles.feed_venues if feeding else frozenset[str]()
    runtimes = [
        InstrumentRuntime(plan, max_client_rate=config.max_client_rate, fed=fed) for plan in plans
    ]
    any_live: Fanout[bool] = Fanout()
    ladders = [rt.liquidity for rt in runtimes if rt.liquidity is not None]
    any_ladder_live: Fanout[bool] | None = Fanout() if serving and ladders else None
    servers = (
        build_servers(
            plan_servers(config, plans),
            runtimes,
            max_client_rate=config.max_client_rate,
            serving=any_live,
            limits=config.limits,
            tls=tls,
            auth=auth,
            ladders_serving=any_ladder_live,
        )
        if serving
        else []
    )
    registry = build_registry(runtimes, servers)
    endpoints: list[BusEndpoint] = []
    registry.register(BusCollector(endpoints))
    async with trio.open_nursery() as nursery:
        for server in servers:
            await nursery.start(server.serve)
        if serving:
            nursery.start_soon(
                any_serving, [rt.publisher.serving for rt in runtimes], any_live, name="any-serving"
            )
        if any_ladder_live is not None:
            nursery.start_soon(_any_ladder_live, ladders, any_ladder_live, name="any-ladder-live")
        metrics_address: tuple[str, int] | None = None
        if config.metrics_listen is not None:
            host, port = parse_listen(config.metrics_listen)
            port = await nursery.start(serve_metrics, registry, host, port)
            metrics_address = (host, port)
        fix_server = _fix_server(config, runtimes) if serving else None
        if fix_server is not None:
            await nursery.start(fix_server.serve)
            registry.register(FixCollector(fix_server))
        async with trio.open_nursery() as bus_nursery:
            wiring = _Wiring(roles, nursery, bus_nursery, feed_runner, venues)
            for plan, rt in zip(plans, runtimes, strict=True):
                wiring.instrument(plan, rt)
            endpoints.extend(wiring.endpoints)
            published = wiring.start_publishing()
            if feeding:
                nursery.start_soon(wiring.feeds.run, name="feeds")
            app = App(
                runtimes,
                servers=servers,
                registry=registry,
                metrics_address=metrics_address,
                fix_server=fix_server,
            )
            names = sorted(r.value for r in roles.roles)
            log.info("roles %s on bus %s", ", ".join(names), wiring.config.url)
            task_status.started(app)
            await app.wait_stopping()
            log.info("shutting down")
            for server in servers:
                server.shutdown()
            if fix_server is not None:
                fix_server.shutdown()
            wiring.feeds.cancel()
            with trio.move_on_after(config.shutdown_grace):
                for server in servers:
                    await server.wait_closed()
                if fix_server is not None:
                    await fix_server.wait_closed()
                if feeding:
                    await wiring.feeds.wait_done()
                if published is not None and wiring.publisher is not None:
                    wiring.say_goodbye()
                    wiring.publisher.close()
                    await published.wait()
            bus_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
