"""VenueView is immutable and compares levels only (the change-forwarder test)."""

from __future__ import annotations

import pytest

from dragonflybot.core.book import Level
from dragonflybot.core.view import VenueDown, VenueView


def make(bids: tuple[Level, ...], recv_ns: int = 0, event_time_ms: int | None = None) -> VenueView:
    return VenueView("binance", bids, (Level(11, 1),), event_time_ms, recv_ns)


def test_same_levels_ignores_timestamps_but_not_levels() -> None:
    first = make((Level(10, 1),), recv_ns=1, event_time_ms=5)
    assert first.same_levels(make((Level(10, 1),), recv_ns=2, event_time_ms=6))
    assert not first.same_levels(make((Level(10, 2),)))
    assert not first.same_levels(make(()))
    assert not first.same_levels(None)


def test_views_are_frozen() -> None:
    view = make((Level(10, 1),))
    with pytest.raises(AttributeError):
        view.bids = ()  # type: ignore[misc]
    down = VenueDown("bitstamp", "stale")
    with pytest.raises(AttributeError):
        down.reason = "ok"  # type: ignore[misc]
