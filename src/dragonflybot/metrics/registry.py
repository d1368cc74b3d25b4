"""One ``CollectorRegistry`` per running app: two apps in one process never share a metric.

prometheus-client's default ``REGISTRY`` is process-global mutable state; a second
app (a test, an embedding program) registering the same names into it would
fail or, worse, mix its numbers with the first one's. Each registry built here
holds the app's collector plus the standard process and GC collectors (CPU, RSS,
open files, collections), which read ``/proc`` and ``gc`` at scrape time.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import GCCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry

from dragonflybot.metrics.collector import AppCollector
from dragonflybot.metrics.source import InstrumentSource, ServerCounts


def build_registry(
    instruments: Sequence[InstrumentSource], servers: Sequence[ServerCounts] = ()
) -> CollectorRegistry:
    """A fresh registry exposing ``instruments``, the gRPC ``servers`` (and this process)."""
    registry = CollectorRegistry()
    registry.register(AppCollector(instruments, servers))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
