"""The bus's Prometheus metrics: a role process's publisher and subscribers, read at scrape time.

Same pattern as ``AppCollector``: the bus clients count in plain attributes
(``PublisherStats``, ``SubscriberStats``, ``BusCodec.skipped``) and this collector
reads them only when Prometheus asks. A process without a bus registers none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dragonflybot.bus.publisher import BusPublisher, PublisherStats
from dragonflybot.bus.subscriber import BusSubscriber, SubscriberStats
from dragonflybot.metrics.collector import PREFIX


@attrs.frozen
class BusEndpoint:
    """One bus client of the process: the shared publisher, or one instrument's subscriber."""

    side: Literal["publisher", "subscriber"]
    instrument: str
    """The subscriber's instrument; empty for the publisher (shared by all)."""
    publisher: BusPublisher | None = None
    subscriber: BusSubscriber | None = None


PUBLISHER_COUNTERS: tuple[tuple[str, Callable[[PublisherStats], int], str], ...] = (
    ("bus_published", lambda s: s.published, "Messages written to the bus (SET + PUBLISH)."),
    ("bus_publish_batches", lambda s: s.batches, "Pipelines written (one round trip each)."),
    (
        "bus_publish_conflated",
        lambda s: s.conflated,
        "Values replaced by a newer one before they were written.",
    ),
)

SUBSCRIBER_COUNTERS: tuple[tuple[str, Callable[[SubscriberStats], int], str], ...] = (
    ("bus_received", lambda s: s.received, "Messages read off the bus (stream or latest value)."),
    ("bus_delivered", lambda s: s.delivered, "Messages passed on in order."),
    ("bus_gaps", lambda s: s.gaps, "Sequence gaps seen (each answered by a latest-value read)."),
    ("bus_latest_reads", lambda s: s.latest_reads, "Latest-value reads (on connect, on gaps)."),
)


class BusCollector(Collector):
    """Exposes ``endpoints`` (a list the process fills as it wires its roles)."""

    def __init__(self, endpoints: Sequence[BusEndpoint]) -> None:
        self._endpoints = endpoints

    def collect(self) -> Iterator[Metric]:
        publishers = [e for e in self._endpoints if e.publisher is not None]
        subscribers = [e for e in self._endpoints if e.subscriber is not None]
        for name, read, text in PUBLISHER_COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}_{name}", text)
            family.add_metric([], sum(read(e.publisher.stats) for e in publishers if e.publisher))
            yield family
        for name, read_sub, text in SUBSCRIBER_COUNTERS:
            family = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=["instrument"])
            for e in subscribers:
                assert e.subscriber is not None
                family.add_metric([e.instrument], read_sub(e.subscriber.stats))
            yield family
        skipped = CounterMetricFamily(
            f"{PREFIX}_bus_skipped",
            "Bus messages skipped, by reason: duplicate (not newer than the last), foreign "
            "(a subject not asked for), undecodable, version, kind, invalid.",
            labels=["instrument", "reason"],
        )
        for e in subscribers:
            assert e.subscriber is not None
            stats = e.subscriber.stats
            skipped.add_metric([e.instrument, "duplicate"], stats.duplicates)
            skipped.add_metric([e.instrument, "foreign"], stats.foreign)
            for reason, count in sorted(e.subscriber.codec.skipped.items()):
                skipped.add_metric([e.instrument, reason], count)
        yield skipped
        reconnects = CounterMetricFamily(
            f"{PREFIX}_bus_reconnects",
            "Bus sessions that ended on a failure (then retried with backoff).",
            labels=["side", "instrument"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_bus_up",
            "1 while the bus client is connected (subscribers: subscribed and caught up).",
            labels=["side", "instrument"],
        )
        for e in self._endpoints:
            client = e.publisher if e.publisher is not None else e.subscriber
            assert client is not None
            reconnects.add_metric([e.side, e.instrument], client.stats.failures)
            up.add_metric([e.side, e.instrument], 1.0 if client.connected else 0.0)
        yield reconnects
        yield up
