"""Fault injection for the simulated venues: the knobs, and the per-connection decisions.

Each knob reproduces one way real venues misbehave, so the feeds' recovery paths can be
tested against a server rather than a mock. ``Faults`` is immutable: a test changes faults
at run time by handing the server a new instance (``SimHandle.set_faults``), and one-shot
faults (stall, reconnect notice) fire once per connection for each instance they are set
in. ``FaultState`` is sans-I/O: it turns each queued frame into a list of actions; the
connection writer performs them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

import msgspec

from dragonflybot.errors import ConfigError
from dragonflybot.instrument import parse_instrument
from dragonflybot.sim.frames import FrameKind, Outgoing


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Misbehaviour of one simulated venue; the default misbehaves in no way.

    Counts are per connection and count every message the client receives (acks, data,
    garbage and notices alike).
    """

    drop_after: int | None = None
    """Close the connection once it has been sent this many messages."""
    drop_probability: float = 0.0
    """Chance of closing the connection after each data frame (drawn from a generator
    seeded by ``SimConfig.seed``, the venue and the connection's number: reproducible)."""
    gap_every: int | None = None
    """Omit every Nth diff frame (Binance: the next ``U`` jumps; Bitstamp: a lost diff)."""
    malformed_every: int | None = None
    """Make every Nth message garbage, cycling: bad JSON, wrong types, a negative price.
    Garbage is inserted before a data frame, never instead of one."""
    stall_after: int | None = None
    """After this many messages, send nothing for ``stall_seconds`` (the socket stays open;
    frames queued meanwhile are delivered afterwards)."""
    stall_seconds: float = 0.0
    reconnect_after: int | None = None
    """After this many messages send ``bts:request_reconnect`` / ``serverShutdown``, then
    close the connection ``reconnect_grace`` seconds later."""
    reconnect_grace: float = 1.0
    reject_subscriptions: bool = False
    """Answer every subscription with the venue's error reply."""
    max_frames_per_second: float | None = None
    """Throttle: frames beyond this rate wait in the connection's queue."""
    quiet_market: bool = False
    """The venue's market stands still: no updates for any of its products, while its
    connections stay open (acks, heartbeats and pongs still flow): a quiet product."""
    restart_every: int | None = None
    """Every Nth market update is published as the venue's service-restart message
    (Bybit: a snapshot with ``u == 1`` that replaces the book); a venue without such a
    message publishes it as usual."""
    corrupt_book_every: int | None = None
    """Alter one level's amount in every Nth book data frame, leaving the checksum the
    venue computed over the true book: a client that verifies catches it and resyncs; one
    that does not holds a wrong book. Venues without a checksum send the frame unaltered."""
    fault_instrument: str | None = None
    """Limit ``gap_every`` and ``corrupt_book_every`` to this instrument's frames
    (``ETH-BTC`` or ``ethbtc``); ``None``: every instrument."""

    def __post_init__(self) -> None:
        if self.fault_instrument is not None:
            text = self.fault_instrument
            compact = parse_instrument(text).compact if any(c in text for c in "-/_") else text
            msgspec.structs.force_setattr(self, "fault_instrument", compact.lower())
        for name in (
            "drop_after",
            "gap_every",
            "malformed_every",
            "stall_after",
            "corrupt_book_every",
            "restart_every",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"faults.{name} must be >= 1, got {value}")
        if self.reconnect_after is not None and self.reconnect_after < 0:
            raise ConfigError(f"faults.reconnect_after must be >= 0, got {self.reconnect_after}")
        if not 0.0 <= self.drop_probability <= 1.0:
            raise ConfigError(
                f"faults.drop_probability must be in [0, 1], got {self.drop_probability}"
            )
        if self.stall_seconds < 0 or self.reconnect_grace < 0:
            raise ConfigError("faults.stall_seconds and faults.reconnect_grace must be >= 0")
        if self.max_frames_per_second is not None and not self.max_frames_per_second > 0:
            raise ConfigError("faults.max_frames_per_second must be > 0")


NO_FAULTS = Faults()

GARBAGE_VARIANTS = 3
"""0: bad JSON, 1: wrong types, 2: a negative price."""

GarbageMaker = Callable[[int, Outgoing], str]
"""(variant, the data frame the garbage precedes) -> garbage text, venue-specific."""

Corrupter = Callable[[Outgoing], str | None]
"""A book data frame -> the same frame with one level's amount altered and its checksum
left as it was, or ``None`` when the venue has no checksum (venue-specific)."""


def _no_corruption(frame: Outgoing) -> None:
    return None


Action = (
    tuple[Literal["text"], str]
    | tuple[Literal["frame"], Outgoing]
    | tuple[Literal["stall"], float]
    | tuple[Literal["close"], float]
)
"""``text``: send this text; ``frame``: send the frame (stamped); ``stall``: flush, then
send nothing for N s; ``close``: flush, then close in N s (0: at once, dropping the rest)."""


class FaultState:
    """Counters and one-shot flags of one connection."""

    __slots__ = (
        "_books",
        "_corrupt",
        "_diffs",
        "_garbage",
        "_garbage_maker",
        "_notice",
        "_notice_for",
        "_rng",
        "_stalled_for",
        "sent",
    )

    def __init__(
        self,
        rng: random.Random,
        garbage: GarbageMaker,
        notice: Callable[[], str],
        corrupt: Corrupter = _no_corruption,
    ) -> None:
        self._rng = rng
        self._corrupt = corrupt
        self._books = 0
        self._garbage_maker = garbage
        self._notice = notice
        self.sent = 0
        self._diffs = 0
        self._garbage = 0
        self._stalled_for: Faults | None = None
        self._notice_for: Faults | None = None

    def passed(self, count: int) -> None:
        """``count`` frames went out with no fault in force (what ``decide`` counts for
        each under ``NO_FAULTS``), decided in one step by a writer's fast path."""
        self.sent += count

    def decide(self, frame: Outgoing, faults: Faults) -> list[Action]:
        """The actions that deliver ``frame`` under ``faults``, in order; processing stops
        at a ``close`` with delay 0."""
        if faults is NO_FAULTS:
            self.sent += 1
            return [("frame", frame)]
        actions: list[Action] = []
        data = frame.kind is not FrameKind.CONTROL
        if data and faults.malformed_every and (self.sent + 1) % faults.malformed_every == 0:
            actions.append(("text", self._garbage_maker(self._garbage % GARBAGE_VARIANTS, frame)))
            self._garbage += 1
            if self._count(actions, faults):
                return actions
        targeted = faults.fault_instrument is None or frame.instrument == faults.fault_instrument
        if frame.kind is FrameKind.DIFF and targeted:
            self._diffs += 1
            if faults.gap_every and self._diffs % faults.gap_every == 0:
                return actions
        corrupted = None
        if data and targeted and faults.corrupt_book_every:
            self._books += 1
            if self._books % faults.corrupt_book_every == 0:
                corrupted = self._corrupt(frame)
        actions.append(("frame", frame) if corrupted is None else ("text", corrupted))
        if self._count(actions, faults):
            return actions
        if data and faults.drop_probability and self._rng.random() < faults.drop_probability:
            actions.append(("close", 0.0))
            return actions
        if (
            faults.reconnect_after is not None
            and self.sent >= faults.reconnect_after
            and self._notice_for is not faults
        ):
            self._notice_for = faults
            actions.append(("text", self._notice()))
            if self._count(actions, faults):
                return actions
            actions.append(("close", faults.reconnect_grace))
        if (
            faults.stall_after is not None
            and self.sent >= faults.stall_after
            and self._stalled_for is not faults
        ):
            self._stalled_for = faults
            actions.append(("stall", faults.stall_seconds))
        return actions

    def _count(self, actions: list[Action], faults: Faults) -> bool:
        """Count one more message sent; True (and a close appended) when it was the last."""
        self.sent += 1
        if faults.drop_after is not None and self.sent >= faults.drop_after:
            actions.append(("close", 0.0))
            return True
        return False
