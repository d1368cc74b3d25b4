"""Builders for venue views with readable prices."""

from __future__ import annotations

from dragonflybot.core.book import Level
from dragonflybot.core.fixed import parse
from dragonflybot.core.view import VenueView


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple(Level(parse(p), parse(a)) for p, a in pairs)


def make_view(
    venue: str,
    bids: tuple[tuple[str, str], ...] = (("1.0", "1"),),
    asks: tuple[tuple[str, str], ...] = (("1.1", "1"),),
    recv_ns: int = 0,
) -> VenueView:
    return VenueView(venue, levels(*bids), levels(*asks), None, recv_ns)
