"""The layers import one way: the service runs without the simulator, metrics without the app."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("dragonflybot.app", "dragonflybot.sim"),
        ("dragonflybot.metrics", "dragonflybot.app"),
        ("dragonflybot.venues.registry", "dragonflybot.sim"),
        ("dragonflybot.feed", "dragonflybot.sim"),
    ],
)
def test_module_does_not_import(module: str, forbidden: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(m for m in sys.modules if m == {forbidden!r} "
        f"or m.startswith({forbidden!r} + '.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
