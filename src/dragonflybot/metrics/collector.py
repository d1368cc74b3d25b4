"""The service's Prometheus metrics, read from the plain counters at scrape time.

Feeds, aggregators and book streams count in plain attributes (``FeedStats``,
``AggregatorStats``, ``StreamStats``) and bucket their latencies in
``LatencyHistogram``s; nothing on their paths touches prometheus-client. This
collector walks those objects only when Prometheus asks, so a scrape costs a few
microseconds per series and an unscraped service pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import get_args

import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dragonflybot.feed.stats import FeedState, FeedStats
from dragonflybot.latency import LatencyHistogram
from dragonflybot.metrics.source import InstrumentSource, ServerCounts
from dragonflybot.service.stats import ServerStats

PREFIX = "dragonflybot"

FEED_STATES: tuple[str, ...] = get_args(FeedState)

FEED_COUNTERS: tuple[tuple[str, Callable[[FeedStats], int], str], ...] = (
    ("feed_frames_received", lambda s: s.frames, "WebSocket messages received."),
    ("feed_frames_parsed", lambda s: s.parsed, "Frames decoded as well-formed venue messages."),
    ("feed_frames_malformed", lambda s: s.malformed, "Frames skipped as malformed."),
    ("feed_frames_ignored", lambda s: s.ignored, "Well-formed frames not meant for this feed."),
    (
        "feed_book_updates_forwarded",
        lambda s: s.forwarded,
        "Top-N changes handed towards the aggregator.",
    ),
    ("feed_venue_down_updates", lambda s: s.downs, "Venue-down notices sent to the aggregator."),
    (
        "feed_updates_conflated",
        lambda s: s.conflated,
        "Updates replaced by a newer one before the aggregator took them.",
    ),
    ("feed_gaps", lambda s: s.gaps, "Sequence gaps detected (each discards the book)."),
    ("feed_resyncs", lambda s: s.resyncs, "Books discarded and rebuilt while connected."),
    ("feed_reconnects", lambda s: s.reconnects, "Connections lost or closed, then retried."),
    ("feed_connects", lambda s: s.connects, "Subscriptions acknowledged."),
    ("feed_stale_periods", lambda s: s.stale_periods, "Times the venue fell silent too long."),
    ("feed_snapshot_requests", lambda s: s.snapshot_requests, "REST snapshot requests made."),
    ("feed_snapshot_failures", lambda s: s.snapshot_failures, "REST snapshot requests failed."),
    ("feed_venue_notices", lambda s: s.notices, "Errors the venue reported after subscribing."),
    (
        "feed_subscriptions_rejected",
        lambda s: s.rejections,
        "Subscriptions the venue refused (the venue leaves that instrument's book).",
    ),
    ("feed_book_messages_applied", lambda s: s.sync.applied, "Book messages applied."),
    (
        "feed_book_messages_dropped",
        lambda s: s.sync.dropped,
        "Diffs dropped as older than the book.",
    ),
    ("feed_snapshots_installed", lambda s: s.sync.snapshots, "REST snapshots installed."),
    ("feed_snapshot_refetches", lambda s: s.sync.refetches, "REST snapshots rejected as stale."),
    (
        "feed_integrity_failures",
        lambda s: s.sync.integrity_failures,
        "Books discarded by the integrity check (checksum, sequence chain, crossed book).",
    ),
    (
        "feed_crossed_books",
        lambda s: s.sync.crossed,
        "Venue books found crossed or locked with themselves (excluded and resynced).",
    ),
    ("feed_resubscribes", lambda s: s.resubscribes, "Resubscriptions to rebuild a book."),
)
"""(name without the prefix and ``_total``, how to read it, help)."""


def _trio_now() -> float | None:
    """trio's clock (the one ``FeedStats.data_at`` is on), or ``None`` outside a trio run."""
    try:
        return trio.current_time()
    except RuntimeError:
        return None


SERVER_COUNTERS: tuple[tuple[str, Callable[[ServerStats], int], str], ...] = (
    ("grpc_connections_accepted", lambda s: s.connections_accepted, "gRPC connections accepted."),
    (
        "grpc_connections_refused",
        lambda s: s.connections_refused,
        "gRPC connections closed at once: max_connections were open.",
    ),
    (
        "grpc_connections_timed_out",
        lambda s: s.connections_timed_out,
        "gRPC connections closed for no handshake or no stream in time.",
    ),
    ("grpc_accept_errors", lambda s: s.accept_errors, "accept() failures waited out (EMFILE...)."),
    (
        "grpc_protocol_errors",
        lambda s: s.protocol_errors,
        "gRPC connections ended with GOAWAY for breaking HTTP/2.",
    ),
    (
        "grpc_streams_refused",
        lambda s: s.streams_refused,
        "Streams refused (REFUSED_STREAM): over the per-connection limit or shutting down.",
    ),
    ("grpc_streams_reset", lambda s: s.streams_reset, "Streams reset by the client."),
    (
        "grpc_requests_rejected",
        lambda s: s.requests_rejected,
        "Malformed requests answered with an error status.",
    ),
    (
        "grpc_messages_too_large",
        lambda s: s.messages_too_large,
        "Request messages over max_receive_message (RESOURCE_EXHAUSTED).",
    ),
    (
        "grpc_tls_failures",
        lambda s: s.tls_failures,
        "TLS handshakes that failed (no or an untrusted client certificate, not TLS).",
    ),
    (
        "grpc_unauthenticated",
        lambda s: s.unauthenticated,
        "Calls refused with UNAUTHENTICATED (no bearer token or a wrong one).",
    ),
    (
        "grpc_keepalive_timeouts",
        lambda s: s.keepalive_timeouts,
        "gRPC connections closed for not answering a keepalive PING in time.",
    ),
    (
        "grpc_internal_errors",
        lambda s: s.internal_errors,
        "gRPC connections ended by an unexpected server error (a bug; logged).",
    ),
)
"""(name without the prefix and ``_total``, how to read it, help), labelled ``listen``."""

FLOOD_KINDS: tuple[tuple[str, Callable[[ServerStats], int]], ...] = (
    ("control", lambda s: s.floods_control),
    ("reset", lambda s: s.floods_reset),
    ("header_block", lambda s: s.floods_header_block),
    ("unread", lambda s: s.floods_unread),
)


class AppCollector(Collector):
    """Every metric of the given instruments, labelled ``instrument`` (and ``venue``), and
    of the gRPC servers, labelled ``listen`` (a server serves every instrument at its
    address, so its counters belong to the address, not to one instrument)."""

    def __init__(
        self, instruments: Sequence[InstrumentSource], servers: Sequence[ServerCounts] = ()
    ) -> None:
        self._instruments = tuple(instruments)
        self._servers = tuple(servers)

    def collect(self) -> Iterator[Metric]:
        yield from self._feed_metrics()
        yield from self._aggregator_metrics()
        yield from self._service_metrics()
        yield from self._latency_metrics()

    def _feed_metrics(self) -> Iterator[Metric]:
        labels = ["instrument", "venue"]
        feeds = [
            (rt.name, venue, stats)
            for rt in self._instruments
            for venue, stats in rt.feed_stats.items()
        ]
        for name, read, doc in FEED_COUNTERS:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            for instrument, venue, stats in feeds:
                counter.add_metric([instrument, venue], read(stats))
            yield counter
        state = GaugeMetricFamily(
            f"{PREFIX}_feed_state",
            "1 for the feed's current state, 0 for the others "
            f"({', '.join(FEED_STATES)}); only live books are merged.",
            labels=[*labels, "state"],
        )
        for instrument, venue, stats in feeds:
            for name in FEED_STATES:
                state.add_metric([instrument, venue, name], 1.0 if stats.state == name else 0.0)
        yield state
        age = GaugeMetricFamily(
            f"{PREFIX}_feed_data_age_seconds",
            "Seconds since the venue's book last changed; a quiet venue on a healthy "
            "connection stays in the book while this grows (liveness is the connection's).",
            labels=labels,
        )
        now = _trio_now()
        if now is not None:
            for instrument, venue, stats in feeds:
                if stats.data_at is not None:
                    age.add_metric([instrument, venue], max(0.0, now - stats.data_at))
        yield age

    def _aggregator_metrics(self) -> Iterator[Metric]:
        labels = ["instrument"]
        counters = (
            ("aggregator_updates", "Venue updates taken by the aggregator.", "updates"),
            ("aggregator_batches", "Batches of updates applied (one wake-up each).", "batches"),
            ("aggregator_merges", "Consolidated merges computed.", "merges"),
            ("aggregator_publications", "Consolidated states published.", "publications"),
        )
        for name, doc, attr in counters:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            for rt in self._instruments:
                counter.add_metric([rt.name], getattr(rt.aggregator_stats, attr))
            yield counter
        largest = GaugeMetricFamily(
            f"{PREFIX}_aggregator_largest_batch", "Largest batch applied so far.", labels=labels
        )
        live = GaugeMetricFamily(
            f"{PREFIX}_live_venues", "Venues merged into the published book.", labels=labels
        )
        for rt in self._instruments:
            largest.add_metric([rt.name], rt.aggregator_stats.largest_batch)
            state = rt.latest()
            live.add_metric([rt.name], len(state.live) if state is not None else 0)
        yield largest
        yield live

    def _service_metrics(self) -> Iterator[Metric]:
        labels = ["instrument"]
        connections = GaugeMetricFamily(
            f"{PREFIX}_grpc_connections",
            "gRPC client connections open to the instrument's address (shared by the "
            "instruments on it).",
            labels=labels,
        )
        streams = GaugeMetricFamily(
            f"{PREFIX}_grpc_book_streams", "BookSummary streams open.", labels=labels
        )
        opened = CounterMetricFamily(
            f"{PREFIX}_grpc_book_streams_opened", "BookSummary streams started.", labels=labels
        )
        sent = CounterMetricFamily(
            f"{PREFIX}_grpc_summaries_sent", "Summaries handed to streams.", labels=labels
        )
        conflated = CounterMetricFamily(
            f"{PREFIX}_grpc_summaries_conflated",
            "Summaries skipped by a stream because a newer one replaced them.",
            labels=labels,
        )
        v1_streams = GaugeMetricFamily(
            f"{PREFIX}_grpc_v1_book_streams",
            "dragonflybot.v1 StreamBook streams open.",
            labels=labels,
        )
        v1_opened = CounterMetricFamily(
            f"{PREFIX}_grpc_v1_book_streams_opened", "StreamBook streams started.", labels=labels
        )
        v1_sent = CounterMetricFamily(
            f"{PREFIX}_grpc_v1_books_sent", "v1 Books handed to streams.", labels=labels
        )
        v1_conflated = CounterMetricFamily(
            f"{PREFIX}_grpc_v1_books_conflated",
            "v1 Books skipped by a stream because a newer one replaced them.",
            labels=labels,
        )
        for rt in self._instruments:
            key = [rt.name]
            connections.add_metric(key, rt.connection_count)
            streams.add_metric(key, rt.stream_stats.open)
            opened.add_metric(key, rt.stream_stats.opened)
            sent.add_metric(key, rt.stream_stats.sent)
            conflated.add_metric(key, rt.stream_stats.conflated)
            v1_streams.add_metric(key, rt.v1_stats.open)
            v1_opened.add_metric(key, rt.v1_stats.opened)
            v1_sent.add_metric(key, rt.v1_stats.sent)
            v1_conflated.add_metric(key, rt.v1_stats.conflated)
        yield from (connections, streams, opened, sent, conflated)
        yield from (v1_streams, v1_opened, v1_sent, v1_conflated)
        for name, read, doc in SERVER_COUNTERS:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["listen"])
            for server in self._servers:
                counter.add_metric([server.address], read(server.stats))
            yield counter
        floods = CounterMetricFamily(
            f"{PREFIX}_grpc_floods_cut",
            "gRPC connections cut with GOAWAY ENHANCE_YOUR_CALM, by what they flooded.",
            labels=["listen", "kind"],
        )
        for server in self._servers:
            for kind, read in FLOOD_KINDS:
                floods.add_metric([server.address, kind], read(server.stats))
        yield floods

    def _latency_metrics(self) -> Iterator[Metric]:
        hops: tuple[tuple[str, str, Callable[[InstrumentSource], LatencyHistogram]], ...] = (
            (
                "latency_receive_to_merged_seconds",
                "Venue frame receipt to the publication of the merged book containing it.",
                lambda rt: rt.aggregator_stats.receive_to_merged,
            ),
            (
                "latency_receive_to_sent_seconds",
                "Venue frame receipt to the hand-off of its Summary to a gRPC stream.",
                lambda rt: rt.stream_stats.receive_to_sent,
            ),
            (
                "latency_receive_to_v1_sent_seconds",
                "Venue frame receipt to the hand-off of its v1 Book to a StreamBook stream.",
                lambda rt: rt.v1_stats.receive_to_sent,
            ),
        )
        parsed = HistogramMetricFamily(
            f"{PREFIX}_latency_receive_to_parsed_seconds",
            "Venue frame receipt to the feed listener handing on the venue view it changed.",
            labels=["instrument", "venue"],
        )
        for rt in self._instruments:
            for venue, stats in rt.feed_stats.items():
                histogram = stats.receive_to_parsed
                parsed.add_metric(
                    [rt.name, venue], histogram.cumulative(), sum_value=histogram.sum_ns / 1e9
                )
        yield parsed
        for name, doc, read in hops:
            family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=["instrument"])
            for rt in self._instruments:
                histogram = read(rt)
                family.add_metric(
                    [rt.name], histogram.cumulative(), sum_value=histogram.sum_ns / 1e9
                )
            yield family
