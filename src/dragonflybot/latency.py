"""Latency histograms the hot path can afford: plain bucket counts, no locks, no labels.

A ``prometheus_client.Histogram`` takes a lock and walks its label machinery on
every ``observe`` (about a microsecond). Here an observation is one ``bisect``
over integer nanosecond bounds and two integer additions; the per-App collector
turns the counts into a Prometheus histogram only when it is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BOUNDS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
"""Upper bounds in seconds: from the shortest hop (a merge) up to seconds (a stalled client)."""


class LatencyHistogram:
    """Counts of elapsed times per bucket (``le`` semantics, like Prometheus) and their sum."""

    __slots__ = ("_bounds_ns", "bounds", "counts", "sum_ns")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        if not bounds or any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError("bounds must be positive, increasing and not empty")
        self.bounds = tuple(bounds)
        self._bounds_ns = [round(b * 1e9) for b in bounds]
        self.counts = [0] * (len(bounds) + 1)
        """One count per bound, then the overflow (``+Inf``) count; not cumulative."""
        self.sum_ns = 0

    def observe_ns(self, elapsed_ns: int) -> None:
        """Count one elapsed time, in nanoseconds (negative clamps to zero)."""
        if elapsed_ns < 0:
            elapsed_ns = 0
        self.counts[bisect_left(self._bounds_ns, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``, as Prometheus exposes them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append((repr(float(bound)), float(total)))
        out.append(("+Inf", float(total + self.counts[-1])))
        return out
