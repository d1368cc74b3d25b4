"""Each test gets a fresh server process, so its memory and descriptors start from a baseline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import ServerProcess

RSS_GROWTH_KB = 30 * 1024
"""The stated bound: no attack here may grow the server's RSS by more than 30 MB
(baseline ~45 MB). Before issue 16, one connection took it to 1.07 GB."""

TEST_LIMITS = {"handshake_timeout": 1.0, "idle_timeout": 2.0, "request_timeout": 2.0}


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess(TEST_LIMITS) as process:
        yield process
