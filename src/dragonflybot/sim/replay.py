"""Serving recordings: a simulated venue that plays a capture back to each client.

Each client gets its own playback, starting ``replay_settle`` seconds after its first
subscription, at the recorded pace, ``speed`` times it, or as fast as the client reads.
Data frames go to clients subscribed to their stream or channel, byte for byte as
recorded (a Binance frame recorded on a combined stream is re-wrapped only for a client on
the raw endpoint, and vice versa). Control traffic (acks, heartbeat replies) is answered
live by the venue protocol instead of replayed, since the client's requests differ from
the recorder's; venue notices (``serverShutdown``, ``bts:request_reconnect``) and frames
that do not decode are delivered to every client at their recorded time. REST snapshots
are looked up by the key the venue's ``SimVenue.rest_key`` reads from the URL (a symbol,
a pair). Which venue a record belongs to and how its frames are classified is each
simulated venue's own rule (``sim.plugin.SimVenue``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

import attrs
import msgspec
import trio

from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.sim.capture import CaptureRecord, RecordKind, is_capture, read_capture
from dragonflybot.sim.config import SimConfig
from dragonflybot.sim.connection import ClientConnection
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.http import HttpResponse
from dragonflybot.sim.lineformat import read_lines
from dragonflybot.sim.plugin import BROADCAST, ReplayFrame, SimVenue, load_sim_venue
from dragonflybot.sim.protocol import Key
from dragonflybot.sim.venue_server import VenueServer
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec

SimVenuePair = tuple[VenueSpec, SimVenue]
_HIGH_WATER: Final = 8192
"""Frames queued for a client before an as-fast-as-possible playback waits for it."""
_STEP: Final = 256
"""Frames an as-fast-as-possible playback queues between checkpoints, so the writer sends
while it queues more: without them it queued ``_HIGH_WATER`` frames, then waited for the
writer to send them all, and the socket ran dry while it queued again."""


@attrs.frozen
class VenueRecording:
    venue: str
    sim: SimVenue
    frames: tuple[ReplayFrame, ...]
    rest: Mapping[str, bytes]
    """Symbol (Binance, upper-case) or pair (Bitstamp) -> first recorded snapshot body."""
    channels: frozenset[str]


def venue_of_url(url: str, venues: Mapping[str, SimVenuePair]) -> str | None:
    """The venue a recorded URL belongs to, judged by host, then by path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    for name, (spec, _) in venues.items():
        if any(fragment in host for fragment in spec.url_hosts):
            return name
    for name, (_, sim) in venues.items():
        if sim.owns_path(parts.path):
            return name
    return None


def build_recordings(
    records: Iterable[tuple[str | None, CaptureRecord]],
    venues: Mapping[str, VenueSpec] = VENUES,
) -> dict[str, VenueRecording]:
    """Group records by venue (given, else judged from their URL) into recordings."""
    plugins = {name: (spec, load_sim_venue(spec)) for name, spec in venues.items()}
    frames: dict[str, list[ReplayFrame]] = {}
    rest: dict[str, dict[str, bytes]] = {}
    channels: dict[str, set[str]] = {}
    venues_by_url: dict[str, str | None] = {}
    for given, record in records:
        venue = given
        if venue is None:
            if record.url not in venues_by_url:
                venues_by_url[record.url] = venue_of_url(record.url, plugins)
            venue = venues_by_url[record.url]
        if venue is None:
            raise DecodeError(f"cannot tell which venue {record.url!r} belongs to")
        if venue not in plugins:
            known = ", ".join(sorted(plugins))
            raise DecodeError(f"recorded venue {venue!r} is not known (known: {known})")
        sim = plugins[venue][1]
        venue_channels = channels.setdefault(venue, set())
        if record.kind is RecordKind.REST:
            key = sim.rest_key(record.url)
            if key is not None:
                rest.setdefault(venue, {}).setdefault(key, record.payload)
        elif record.kind is RecordKind.CONNECT:
            venue_channels.update(sim.connect_channels(record.url))
        elif record.kind is RecordKind.WS_OUT:
            venue_channels.update(sim.requested(record.payload))
        elif record.kind is RecordKind.WS_IN:
            text = record.payload.decode("utf-8", "replace")
            frame = sim.replay_frame(record, text)
            if frame is not None:
                frames.setdefault(venue, []).append(frame)
                if frame.channel != BROADCAST:
                    venue_channels.add(frame.channel)
    return {
        venue: VenueRecording(
            venue,
            plugins[venue][1],
            tuple(sorted(frames.get(venue, []), key=lambda f: f.time_ns)),
            rest.get(venue, {}),
            frozenset(channels[venue]),
        )
        for venue in channels
    }


def load_records(path: str | os.PathLike[str]) -> list[tuple[str | None, CaptureRecord]]:
    """Records of one file (either format), each with the venue its capture names."""
    try:
        capture_file = is_capture(path)
    except OSError as exc:
        raise DecodeError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    if not capture_file:
        return [(None, r) for r in read_lines(path)]
    venue: str | None = None
    out: list[tuple[str | None, CaptureRecord]] = []
    for record in read_capture(path).records:
        if record.kind is RecordKind.META:
            try:
                meta = msgspec.json.decode(record.payload, type=dict[str, str])
            except msgspec.DecodeError as exc:
                raise DecodeError(f"{os.fspath(path)}: bad META record: {exc}") from exc
            venue = meta.get("venue", venue)
            continue
        out.append((venue, record))
    return out


class ReplayVenueServer(VenueServer):
    """A venue serving one recording to every client."""

    def __init__(self, recording: VenueRecording, config: SimConfig) -> None:
        catalog = {name: name for name in recording.channels}
        protocol = recording.sim.protocol(catalog)
        super().__init__(recording.venue, protocol, recording.sim.ws_path, config)
        self.recording = recording

    def subscribe(self, conn: ClientConnection, key: Key) -> None:
        """Playback reads the session's subscriptions directly."""

    def unsubscribe(self, conn: ClientConnection, key: Key) -> None:
        """Playback reads the session's subscriptions directly."""

    def connection_opened(self, conn: ClientConnection, nursery: trio.Nursery) -> None:
        super().connection_opened(conn, nursery)
        nursery.start_soon(self._play, conn)

    def rest(self, method: str, target: str) -> HttpResponse:
        key = self.recording.sim.rest_key(target)
        body = self.recording.rest.get(key) if key is not None else None
        if body is None:
            return HttpResponse.json(404, {"code": -1121, "msg": "Not in the recording."})
        return HttpResponse(200, body)

    async def _play(self, conn: ClientConnection) -> None:
        config = self.config
        await conn.subscribed.wait()
        await trio.sleep(config.replay_settle)
        frames = self.recording.frames
        if not frames:
            return
        outbox = conn.outbox
        keys = conn.session.keys
        wrap = self.protocol.wrap
        paced = not config.as_fast_as_possible
        stamp = config.stamp_send_time
        origin = frames[0].time_ns
        start = trio.current_time()
        scale = 1e-9 / config.speed
        for index, frame in enumerate(frames):
            if paced:
                due = start + (frame.time_ns - origin) * scale
                if due > trio.current_time():
                    await trio.sleep_until(due)
            elif len(outbox) >= _HIGH_WATER:
                await outbox.wait_idle()
            elif index % _STEP == 0:
                await trio.lowlevel.checkpoint()
            if frame.channel == BROADCAST:
                outbox.put(Outgoing(frame.text, FrameKind.CONTROL))
                continue
            for name, form in keys:
                if name != frame.channel:
                    continue
                if form == frame.form:
                    text = frame.text
                    at = _stamp_index(text, frame.payload) if stamp else -1
                else:
                    text, at = wrap((name, form), frame.payload)
                outbox.put(Outgoing(text, frame.kind, at, "", name))


def _stamp_index(text: str, payload: str) -> int:
    if not payload.endswith("}"):
        return -1
    at = text.find(payload)
    return -1 if at < 0 else at + len(payload) - 1


def replay_servers(
    config: SimConfig, venues: Mapping[str, VenueSpec] = VENUES
) -> dict[str, ReplayVenueServer]:
    """One server per venue found in ``config.replay``; ``ConfigError`` if unreadable."""
    records: list[tuple[str | None, CaptureRecord]] = []
    try:
        for path in config.replay:
            records += load_records(path)
        recordings = build_recordings(records, venues)
    except DecodeError as exc:
        raise ConfigError(str(exc)) from exc
    if not recordings:
        raise ConfigError("the replay files hold no venue traffic")
    return {venue: ReplayVenueServer(rec, config) for venue, rec in recordings.items()}
