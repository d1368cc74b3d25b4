"""``VenueSpec``: everything the program knows about one venue, declared in its own module.

A venue is a plug-in: its sans-I/O protocol module under ``venues/`` (which defines
its ``SPEC``), its simulated venue under ``sim/``, and one entry in
``venues.registry.VENUES``. Nothing else names a venue: the feed builds the protocol
through ``create``, the recorder asks ``capture_snapshot`` what REST book a capture
should carry, replay recognises a recorded URL by ``url_hosts``, and the simulator
loads the simulated venue named by ``sim``.

``sim`` is an import reference (``"package.module:ATTRIBUTE"``), not an object, so
that ``venues`` never imports ``sim``: the client side of a venue runs in production
without the simulator, and the simulator depends on the venues, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from dragonflybot.config import VenueConfig
from dragonflybot.venues.base import FetchSnapshot, VenueProtocol

ProtocolFactory = Callable[[VenueConfig, str], VenueProtocol]
"""``(venue config, instrument) -> protocol``."""

CaptureSnapshot = Callable[[VenueProtocol], FetchSnapshot | None]
"""The REST book a capture should carry for a protocol that did not ask for one (top
mode), so a replay can serve it; ``None`` when the venue has no REST book."""


def no_capture_snapshot(protocol: VenueProtocol) -> None:
    """For a venue whose book comes whole from the stream: a capture needs no REST book."""
    return None


@attrs.frozen
class VenueSpec:
    """One venue: what the feed, the recorder, replay and the simulator need of it."""

    name: str
    """The venue's name in configuration, logs and metrics labels (``binance``)."""
    create: ProtocolFactory
    """Builds the sans-I/O client protocol for one instrument."""
    default_ws_url: str
    default_rest_url: str
    symbol: Callable[[str], str]
    """Instrument (``ETH-BTC``) -> the venue's symbol for it (``ETHBTC``)."""
    sim: str
    """``"module:ATTRIBUTE"`` of the simulated venue (a ``sim.plugin.SimVenue``)."""
    url_hosts: tuple[str, ...] = ()
    """Host name fragments that identify this venue in a recorded URL (``binance``)."""
    capture_snapshot: CaptureSnapshot = no_capture_snapshot
