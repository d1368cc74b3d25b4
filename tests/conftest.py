"""Shared fixtures. Tests on the recorded venue data skip when DRAGONFLYBOT_SAMPLES is unset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
