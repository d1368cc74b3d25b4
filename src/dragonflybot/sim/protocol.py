"""The interface every simulated venue protocol implements, sans-I/O.

A protocol object answers a client's connection request and its control frames
(subscribe, unsubscribe, heartbeat) with replies and subscription changes, and wraps data
payloads the way the venue does. It never touches a socket or a clock; the trio server in
``venue_server`` moves the bytes. The same protocol serves the market model and replays.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

from dragonflybot.sim.faults import Faults
from dragonflybot.sim.frames import Outgoing

Key = tuple[str, str]
"""A subscription as the server broadcasts it: (stream or channel name, delivery form).
The form is ``"combined"``/``"raw"`` for Binance (the same stream is wrapped differently)
and ``""`` for Bitstamp."""


class Rejection(NamedTuple):
    """Refuse the WebSocket handshake with this HTTP status and body."""

    status: int
    body: str


class Reaction(NamedTuple):
    """What one client frame causes: replies (in order), then subscription changes.

    The server applies ``unsubscribe`` and ``subscribe`` before queueing the replies, so
    an ack always precedes the first data frame of its subscription."""

    replies: list[str]
    subscribe: list[Key]
    unsubscribe: list[Key]


class Session:
    """One client connection's protocol state."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[Key, None] = {}
        """Current subscriptions, in subscription order."""


class VenueProtocol(abc.ABC):
    """A venue's WebSocket control protocol and framing.

    ``catalog`` maps every stream/channel name the venue serves to the instrument (or, in
    a replay, the recorded stream) it carries; anything else is an unknown name.
    """

    name: ClassVar[str]
    numbers_frames: ClassVar[bool] = False
    """Whether every frame of a connection carries a per-connection sequence number
    (Coinbase's ``sequence_num``), written by ``number`` when the frame is sent."""

    def __init__(self, catalog: Mapping[str, str]) -> None:
        self.catalog = catalog

    @abc.abstractmethod
    def open(self, target: str) -> tuple[Session, list[Key]] | Rejection:
        """A new connection to ``target`` (path and query): its session and the
        subscriptions the URL itself names, or why the handshake is refused."""

    @abc.abstractmethod
    def on_text(self, session: Session, text: str, faults: Faults) -> Reaction:
        """A client text frame."""

    @abc.abstractmethod
    def wrap(self, key: Key, payload: str) -> tuple[str, int]:
        """The frame carrying data ``payload`` on ``key`` and the index of the payload's
        closing brace (where a send-time stamp goes)."""

    @abc.abstractmethod
    def reconnect_notice(self, session: Session, time_ms: int) -> str:
        """The venue's "please reconnect" message for this session."""

    @abc.abstractmethod
    def wrong_types(self, frame: Outgoing, key: Key) -> str:
        """A frame on ``key`` shaped like ``frame`` whose fields have the wrong types."""

    def number(self, session: Session, frame: Outgoing) -> Outgoing:
        """``frame`` with this connection's next sequence number in it (only called when
        ``numbers_frames``); frames are shared between connections, so numbering is per
        send, not per render."""
        return frame

    def garbage(self, session: Session, variant: int, frame: Outgoing) -> str:
        """Malformed frame number ``variant`` (bad JSON, wrong types, negative price) to
        send before ``frame``; a client must skip it without touching its book."""
        key = next((k for k in session.keys if k[0] == frame.channel), (frame.channel, ""))
        text = frame.text
        if variant == 0:
            return text[: max(1, len(text) // 2)]
        if variant == 2 and '[["' in text:
            # The first level of the frame, with a minus sign: same ids, same timestamps.
            return text.replace('[["', '[["-', 1)
        return self.wrong_types(frame, key)

    def corrupt_book(self, frame: Outgoing) -> str | None:
        """``frame`` (a book data frame) with one level's amount altered and the venue's
        checksum left as it was; ``None`` (the default): the venue has no checksum, so a
        client could not tell, and the frame goes out unaltered."""
        return None
