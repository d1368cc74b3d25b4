"""Observability: Prometheus metrics read from the service's own counters, served per app.

``LatencyHistogram`` is what hot paths record into (plain bucket counts);
``AppCollector`` exposes every counter and histogram of a running app at scrape
time; ``serve_metrics`` serves one ``CollectorRegistry`` on ``/metrics`` as a trio
task. There is no module-level registry: each ``App`` builds its own.
"""

from dragonflybot.latency import LATENCY_BOUNDS, LatencyHistogram
from dragonflybot.metrics.collector import AppCollector
from dragonflybot.metrics.http import METRICS_PATH, serve_metrics
from dragonflybot.metrics.registry import build_registry

__all__ = [
    "LATENCY_BOUNDS",
    "METRICS_PATH",
    "AppCollector",
    "LatencyHistogram",
    "build_registry",
    "serve_metrics",
]
