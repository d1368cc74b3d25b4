"""The generated protobuf classes, under names mypy can see.

protoc's Python output builds its message classes at import time, so a type
checker finds no ``orderbook_pb2.Summary``; this is the one place that says so.
The classes are typed ``Any`` on purpose: their fields are checked by protobuf
itself at construction (a wrong type raises ``TypeError``).
"""

from __future__ import annotations

from typing import Any, Final

from dragonflybot.service.proto import health_pb2, orderbook_pb2

Empty: Final[Any] = orderbook_pb2.Empty  # type: ignore[attr-defined]
Summary: Final[Any] = orderbook_pb2.Summary  # type: ignore[attr-defined]
Level: Final[Any] = orderbook_pb2.Level  # type: ignore[attr-defined]
HealthCheckRequest: Final[Any] = health_pb2.HealthCheckRequest  # type: ignore[attr-defined]
HealthCheckResponse: Final[Any] = health_pb2.HealthCheckResponse  # type: ignore[attr-defined]

SERVING: Final[int] = HealthCheckResponse.SERVING
NOT_SERVING: Final[int] = HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Final[int] = HealthCheckResponse.SERVICE_UNKNOWN
