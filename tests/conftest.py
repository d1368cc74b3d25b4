"""Shared fixtures. Tests on the recorded venue data skip when DRAGONFLYBOT_SAMPLES is unset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Tests are never timed: hypothesis's per-example deadline is a wall-clock assertion, and
# on the shared 2-core machines a busy neighbour makes it fail at random
# (``DeadlineExceeded`` on an example that takes 3 ms when run again).
settings.register_profile("dragonflybot", deadline=None)
settings.load_profile("dragonflybot")


@pytest.fixture
def samples_dir() -> Path:
    """The folder of real recordings (``BINANCE.ws.1.0`` ...), or skip the test."""
    value = os.environ.get("DRAGONFLYBOT_SAMPLES")
    if not value:
        pytest.skip("DRAGONFLYBOT_SAMPLES is not set")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"DRAGONFLYBOT_SAMPLES={value} is not a directory")
    return path
