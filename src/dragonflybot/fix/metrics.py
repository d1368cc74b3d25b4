"""Prometheus metrics of the FIX acceptor, read from ``FixServerStats`` at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dragonflybot.fix.server import FixServer

PREFIX = "dragonflybot_fix"

COUNTERS = (
    ("connections", "connections", "TCP connections accepted."),
    ("sessions", "sessions", "Sessions logged on."),
    ("garbled", "garbled_messages", "Messages dropped for a bad BodyLength or CheckSum."),
    ("rejects", "rejects", "Session-level Rejects (35=3) sent for application messages."),
    ("md_rejects", "md_request_rejects", "MarketDataRequestRejects (35=Y) sent."),
    ("snapshots", "snapshots", "MarketDataSnapshotFullRefresh (35=W) messages sent."),
    ("incrementals", "incrementals", "MarketDataIncrementalRefresh (35=X) messages sent."),
    ("slow_client_drops", "slow_client_drops", "Connections dropped for not reading."),
    ("connection_errors", "connection_errors", "Connections ended by an unexpected error."),
)


class FixCollector(Collector):
    """Register on the app's registry when the acceptor runs."""

    def __init__(self, server: FixServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        stats = self._server.stats
        for attr, name, doc in COUNTERS:
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            counter.add_metric([], getattr(stats, attr))
            yield counter
        active = GaugeMetricFamily(f"{PREFIX}_sessions_active", "Sessions logged on now.")
        active.add_metric([], stats.active)
        yield active
