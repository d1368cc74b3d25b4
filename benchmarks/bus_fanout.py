"""Issue 12 (b) alone: 1,000 clients over two gateway processes on the bus, capped at 20/s.

The ``roles`` suite runs it after the split-feed throughput case, which takes minutes;
this suite is the fan-out table by itself, for a rerun by one command::

    python -m benchmarks --only bus-fanout

(``benchmarks.roles.fanout_table``: one ``feed``+``aggregate`` process, redis-server, two
``serve`` gateways, clients of ``benchmarks.h2client`` in four processes, grpcio clients
beside them at 100.)
"""

from __future__ import annotations

from benchmarks import roles
from benchmarks.harness import Options, Suite, Table


def run(options: Options) -> list[Table]:
    return [roles.fanout_table(options)]


SUITE = Suite(
    name="bus-fanout",
    timing=(
        "- Timing: Summaries counted per client between its first and last; 3 runs per "
        "case (1 with `--quick`)"
    ),
    title="Fan-out over the bus: clients on two gateway processes",
    run=run,
    packages=("trio", "coredis", "wsproto", "grpcio", "h2", "msgspec"),
    long=True,  # only when named: the default run has this table in ``roles`` already
)
