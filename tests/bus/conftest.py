"""Fixtures: a real redis-server (and Redis Cluster) per test, and bus configs pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dragonflybot.bus.connection import BusConfig

from .redis_servers import RedisCluster, RedisServer, redis_cluster, redis_server


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[RedisCluster]:
    async with redis_cluster(tmp_path / "cluster") as nodes:
        yield nodes


@pytest.fixture
def bus(redis: RedisServer) -> BusConfig:
    """Short deadlines and backoff: failures in these tests are local and quick to see."""
    config = BusConfig.from_url(redis.url, prefix="test", timeout=1.0)
    return BusConfig(
        config.host,
        config.port,
        names=config.names,
        timeout=1.0,
        backoff_base=0.02,
        backoff_cap=0.2,
    )
