"""What the simulated venues queue for a connection: ready-to-send text plus the little the
writer needs to apply faults and track what was published."""

from __future__ import annotations

import enum
from typing import NamedTuple

from dragonflybot.sim.market import Update


class FrameKind(enum.IntEnum):
    CONTROL = 0
    """Acks, errors, heartbeat replies: never skipped, never preceded by garbage."""
    DIFF = 1
    """An incremental book update: the frames a gap fault omits."""
    SNAPSHOT = 2
    """A whole top-N book (Binance ``depthN``, Bitstamp ``order_book``)."""


class Outgoing(NamedTuple):
    text: str
    kind: FrameKind
    stamp_at: int = -1
    """Index in ``text`` where ``,"T_send_ns":N`` goes (the data payload's closing brace),
    or -1 for frames that carry no data payload."""
    instrument: str = ""
    channel: str = ""
    """Stream or channel name the frame belongs to (data frames only)."""
    update: Update | None = None
    """The market update this frame publishes (data frames only)."""


def stamped(frame: Outgoing, now_ns: int) -> str:
    """The frame's text with the send-time field added to its data payload."""
    at = frame.stamp_at
    if at < 0:
        return frame.text
    text = frame.text
    return f'{text[:at]},"T_send_ns":{now_ns}{text[at:]}'
