"""``SimVenue``: what one simulated venue module provides, and how the simulator finds it.

Each venue's ``VenueSpec`` (``dragonflybot.venues``) names its simulated venue by import
reference (``spec.sim``, ``"module:ATTRIBUTE"``); ``load_sim_venue`` resolves it. The
model server, replay and the recorder's counterpart dispatch only on the ``SimVenue``
they get this way, so a simulated venue is one module under ``sim/`` and nothing in
the shared simulator names a venue.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Final, Protocol

import attrs

from dragonflybot.errors import ConfigError
from dragonflybot.sim.capture import CaptureRecord
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.instruments import InstrumentSpec
from dragonflybot.sim.market import Update, VenueMarket
from dragonflybot.sim.protocol import Key, Session, VenueProtocol
from dragonflybot.venues.spec import VenueSpec

BROADCAST: Final = ""
"""Channel of replayed frames every client gets (venue notices, undecodable frames)."""


@attrs.frozen(slots=True)
class ReplayFrame:
    """One recorded frame, classified for playback."""

    channel: str
    """Stream/channel the frame belongs to, or ``BROADCAST``."""
    time_ns: int
    text: str
    """The frame exactly as recorded."""
    form: str
    """Delivery form it was recorded in (a ``Key``'s second half)."""
    payload: str
    """The data payload inside ``text`` (== ``text`` when not wrapped)."""
    kind: FrameKind


class Renderer(Protocol):
    """Renders market updates as the venue's frames and answers its REST requests."""

    def render(self, key: Key, market: VenueMarket, update: Update) -> Outgoing | None:
        """The frame publishing ``update`` on ``key``; ``None`` when the venue sends
        nothing for it there (Kraken: a change below the subscribed depth)."""
        ...

    def rest(self, method: str, target: str) -> HttpResponse: ...


def _no_channels(url: str) -> list[str]:
    return []


def _no_rest_key(url: str) -> str | None:
    return None


@attrs.frozen
class SimVenue:
    """A simulated venue: its sans-I/O server protocol, market rendering and replay rules."""

    protocol: Callable[[Mapping[str, str]], VenueProtocol]
    """Builds the server protocol over a catalog (stream/channel name -> instrument)."""
    ws_path: str
    """Path of the WebSocket endpoint a feed connects to (``/stream``, or ``""``)."""
    streams: Callable[[InstrumentSpec], dict[str, str]]
    """Every stream/channel name served for an instrument -> the instrument's name."""
    renderer: Callable[[VenueProtocol, Mapping[str, VenueMarket]], Renderer]
    """Builds the renderer of the market model for one server."""
    replay_frame: Callable[[CaptureRecord, str], ReplayFrame | None]
    """A recorded incoming frame classified for playback; ``None``: a reply to the
    recorder's own request, answered live instead."""
    requested: Callable[[bytes], list[str]]
    """Streams/channels a recorded outgoing frame subscribed to."""
    owns_path: Callable[[str], bool]
    """A recorded URL path of this venue (for URLs whose host names no venue)."""
    rest_key: Callable[[str], str | None] = _no_rest_key
    """The key (symbol, pair) a recorded or requested REST URL asks for; by default
    none: a venue whose book comes whole on the stream serves no book over REST."""
    connect_channels: Callable[[str], list[str]] = _no_channels
    """Streams a recorded connection URL itself subscribed to."""
    subscribed: Callable[[Renderer, Key, VenueMarket], Outgoing | None] | None = None
    """A venue whose book snapshot comes on the stream (Kraken, OKX, Coinbase, Bybit): the
    frame sent to a client right after it subscribes to ``key`` (the whole book as of
    now), before the updates that follow. ``None``: a subscription sends no snapshot."""
    restart: Callable[[Renderer, Key, VenueMarket, Update], Outgoing] | None = None
    """The venue's "service restarted" message carrying ``update`` (Bybit: a snapshot
    with ``u == 1``), sent instead of the usual frame under ``Faults.restart_every``."""
    heartbeat: Callable[[VenueProtocol, Session, int], list[str]] | None = None
    """Frames the venue sends a connection unasked every ``heartbeat_every`` seconds
    (Coinbase's ``heartbeats`` channel), whether or not its products change; called with
    the venue's time in ms."""
    heartbeat_every: float = 1.0


def load_sim_venue(spec: VenueSpec) -> SimVenue:
    """The simulated venue ``spec.sim`` names; ``ConfigError`` when it cannot be loaded."""
    module_name, sep, attribute = spec.sim.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{spec.name}: sim reference {spec.sim!r} is not 'module:ATTRIBUTE'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{spec.name}: cannot import simulated venue {spec.sim!r}") from exc
    venue = getattr(module, attribute, None)
    if not isinstance(venue, SimVenue):
        raise ConfigError(f"{spec.name}: {spec.sim!r} is not a SimVenue")
    return venue
