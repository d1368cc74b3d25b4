"""Timing and result tables shared by every benchmark suite.

No external framework: ``time.perf_counter_ns`` around batches long enough to
dwarf the timer's own cost, with the garbage collector paused (as ``timeit``
does) so a collection triggered by an earlier benchmark does not land in a
later one's numbers. Each repeat gives one per-operation time; we publish the
median with min-max, because a shared CI box has noisy neighbours and a
single mean hides that.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """What the runner tells every suite."""

    quick: bool
    """Few, short repeats: a smoke run whose numbers are not recorded."""
    samples: str | None
    """DRAGONFLYBOT_SAMPLES: the recorded venue data, when available."""
    soak_seconds: float | None = None
    """Length of the memory soak, when not its default (10 minutes; 30 s quick)."""

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 9

    @property
    def min_batch_ns(self) -> int:
        """Time one repeat must cover, so timer overhead and jitter stay small."""
        return 5_000_000 if self.quick else 100_000_000


@dataclass(frozen=True)
class Timing:
    """Nanoseconds per operation, one value per repeat."""

    per_op_ns: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.per_op_ns)

    @property
    def low(self) -> float:
        return min(self.per_op_ns)

    @property
    def high(self) -> float:
        return max(self.per_op_ns)

    @property
    def per_second(self) -> float:
        return 1e9 / self.median

    def us(self) -> str:
        """``median (min-max)`` in microseconds."""
        return f"{self.median / 1e3:.2f} ({self.low / 1e3:.2f}-{self.high / 1e3:.2f})"

    def ns(self) -> str:
        """``median (min-max)`` in nanoseconds."""
        return f"{self.median:.0f} ({self.low:.0f}-{self.high:.0f})"


def measure(
    body: Callable[[T], object],
    setup: Callable[[], T],
    *,
    ops: int,
    options: Options,
) -> Timing:
    """Time ``body(setup())``, which performs ``ops`` operations; ``setup`` is not timed.

    A repeat calls setup+body until the timed part reaches ``options.min_batch_ns``,
    so a body that is cheap or expensive gets an equally stable sample.
    """
    if ops <= 0:
        raise ValueError("ops must be positive")
    body(setup())  # warm-up: caches, lazy imports, specialisation
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = []
        for _ in range(options.repeats):
            total = 0
            calls = 0
            while total < options.min_batch_ns:
                state = setup()
                start = perf_counter_ns()
                body(state)
                total += perf_counter_ns() - start
                calls += 1
            samples.append(total / (calls * ops))
    finally:
        if was_enabled:
            gc.enable()
    return Timing(tuple(samples))


def no_setup() -> None:
    return None


@dataclass(frozen=True)
class Table:
    """One markdown table of results, with a sentence saying what was measured."""

    title: str
    about: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"#### {self.title}", "", self.about, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclass(frozen=True)
class Suite:
    """A benchmark module's entry point, as listed in ``benchmarks.__main__.SUITES``."""

    name: str
    """Used by ``--only`` and in the section markers of docs/performance.md."""
    title: str
    run: Callable[[Options], list[Table]]
    packages: tuple[str, ...] = ()
    """Distributions whose versions matter to these numbers (recorded with them)."""
    code: tuple[str, ...] = ("src", "benchmarks")
    """Paths whose uncommitted edits would make the recorded commit misleading."""
    long: bool = False
    """Runs only when named with ``--only`` (or with ``--all``): a soak takes minutes."""
    timing: str | None = None
    """How its figures are timed, when not by ``measure`` (recorded with them)."""


def spread(values: Sequence[float], spec: str = ",.0f", unit: str = "") -> str:
    """``median (min-max)`` of the repeats: how every suite reports a figure."""
    mid, low, high = statistics.median(values), min(values), max(values)
    return f"{mid:{spec}}{unit} ({low:{spec}}-{high:{spec}}{unit})"
