"""Where the numbers go: one marked section per suite in docs/performance.md.

Each suite owns only the text between its ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->`` markers, so rerunning one suite never touches the
numbers, or the hand-written notes, of another. A number without the machine and
command that produced it is not worth keeping, so both are written with it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from benchmarks.harness import Options, Suite, Table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "performance.md"
HEADER = (
    "# Performance\n\nHow fast the pieces are, measured by `make bench` (`python -m benchmarks`).\n"
)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def update_section(document: str, name: str, title: str, body: str) -> str:
    """Replace the body between ``name``'s markers, or append a new titled section."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    head, found, rest = document.partition(start)
    if found:
        _, closed, tail = rest.partition(end)
        if not closed:
            raise ValueError(f"{start} has no matching {end}")
        return head + block + tail
    if not document.strip():
        document = HEADER
    return document.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware"):
            return value.strip()
    return platform.machine()


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit(paths: Sequence[str]) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # Only the code a suite measures counts; edited docs or tests do not.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def machine_lines(suite: Suite, options: Options, command: str) -> list[str]:
    versions = ", ".join(f"{name} {package_version(name)}" for name in suite.packages)
    data = (
        "set: recorded venue data used where a suite can"
        if options.samples
        else "unset: simulated data only"
    )
    return [
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}`",
        f"- Commit: {git_commit(suite.code)}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- Python: {platform.python_implementation()} {platform.python_version()}"
        f" on {platform.system()} {platform.release()}",
        f"- Packages: {versions or 'none'}",
        f"- `DRAGONFLYBOT_SAMPLES`: {data}",
        suite.timing
        or f"- Timing: median (min-max) of {options.repeats} repeats,"
        f" each at least {options.min_batch_ns / 1e6:.0f} ms of work, GC paused",
        f"- Load average at the start: {load_average()}",
    ]


def render(suite: Suite, options: Options, command: str, tables: Sequence[Table]) -> str:
    parts = ["\n".join(machine_lines(suite, options, command))]
    parts.extend(table.markdown() for table in tables)
    return "\n\n".join(parts)


def write(path: Path, suite: Suite, body: str) -> None:
    document = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(update_section(document, suite.name, suite.title, body))
