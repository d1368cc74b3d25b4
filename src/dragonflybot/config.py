"""Typed configuration: a TOML file decoded straight into msgspec Structs.

An unknown key or a value of the wrong type is an error naming the key
(msgspec's message carries the path, e.g. ``$.venues[0].mode``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Mode = Literal["snapshot", "diff"]


class VenueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One venue feed. ``None`` URLs/symbol mean the venue module's production default."""

    name: str
    mode: Mode = "snapshot"
    ws_url: str | None = None
    rest_url: str | None = None
    symbol: str | None = None
    depth: Annotated[int, msgspec.Meta(ge=1, le=5000)] | None = None
    stale_after: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    heartbeat_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    connect_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    backoff_base: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    backoff_cap: Annotated[float, msgspec.Meta(gt=0)] = 30.0
