"""Run the benchmark suites and record their numbers in docs/performance.md.

Adding a suite: write ``benchmarks/<name>.py`` exposing ``SUITE`` and add its
module name to ``SUITES``. ``--only NAME`` runs one suite; ``--quick`` is a
smoke run (short repeats) whose numbers are printed but not recorded. Long suites
(the memory soak) run only when named with ``--only`` or with ``--all``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Final

from benchmarks import report
from benchmarks.harness import Options, Suite

SUITES: Final = (
    "benchmarks.core",
    "benchmarks.peers",
    "benchmarks.stream_venues",
    "benchmarks.receive",
    "benchmarks.throughput",
    "benchmarks.latency",
    "benchmarks.latency_in_service",
    "benchmarks.fanout",
    "benchmarks.sendpath",
    "benchmarks.roles",
    "benchmarks.bus_fanout",
    "benchmarks.soak",
)


def load_suites() -> list[Suite]:
    suites = []
    for module_name in SUITES:
        suite = getattr(importlib.import_module(module_name), "SUITE", None)
        if not isinstance(suite, Suite):
            raise SystemExit(f"{module_name} does not define SUITE = harness.Suite(...)")
        suites.append(suite)
    return suites


def main(argv: list[str] | None = None) -> int:
    suites = load_suites()
    names = [suite.name for suite in suites]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this suite (repeatable); one of: {', '.join(names)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short smoke run; prints results and does not record them",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=report.DEFAULT_OUTPUT,
        help="markdown file whose suite sections are updated",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--all", action="store_true", help="also run the long suites (soak) without --only"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        metavar="N",
        help="run the memory soak for N minutes (default: 10; 0.5 with --quick)",
    )
    args = parser.parse_args(argv)
    if args.soak_minutes is not None and not args.soak_minutes > 0:
        parser.error("--soak-minutes must be positive")

    options = Options(
        quick=args.quick,
        samples=os.environ.get("DRAGONFLYBOT_SAMPLES") or None,
        soak_seconds=args.soak_minutes * 60 if args.soak_minutes is not None else None,
    )
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    write = not (args.quick or args.no_write)
    for suite in suites:
        if args.only and suite.name not in args.only:
            continue
        if not args.only and suite.long and not args.all:
            continue
        print(f"== {suite.title} ({suite.name})", flush=True)
        tables = suite.run(options)
        body = report.render(suite, options, command, tables)
        print(body, end="\n\n", flush=True)
        if write:
            report.write(args.output, suite, body)
            print(f"recorded in {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
