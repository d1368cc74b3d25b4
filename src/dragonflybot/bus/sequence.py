"""Per-subject sequence checking for a consumer: in order, duplicate, or after a gap.

Sans-I/O. A message is identified by ``(epoch, seq)``: ``epoch`` names the
publisher's run and ``seq`` counts that run's messages on the subject, so a
restarted publisher (sequences start again at 1) is recognised instead of its
messages being mistaken for old duplicates. Messages reach a consumer twice in
normal operation (the subject's latest value read on connect, and the same
message on the channel), so dropping what is not newer is part of the protocol,
not an error.
"""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    NEXT = "next"
    """The first message seen, the one after the last, or a new publisher epoch: deliver."""
    GAP = "gap"
    """Newer than the last by more than one: deliver, and read the latest value in case
    something newer was lost too."""
    STALE = "stale"
    """Not newer than what was delivered (a duplicate): drop."""


class SequenceTracker:
    """The last ``(epoch, seq)`` delivered per subject."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    def last(self, subject: str) -> tuple[int, int] | None:
        return self._last.get(subject)

    def check(self, subject: str, epoch: int, seq: int) -> Verdict:
        """Classify the message and, unless it is ``STALE``, record it as delivered."""
        last = self._last.get(subject)
        if last is not None and last[0] == epoch:
            if seq <= last[1]:
                return Verdict.STALE
            self._last[subject] = (epoch, seq)
            return Verdict.NEXT if seq == last[1] + 1 else Verdict.GAP
        # First sight, or another publisher run: a restarted publisher's latest
        # state replaces the old one whatever its numbers.
        self._last[subject] = (epoch, seq)
        return Verdict.NEXT

    def forget(self, subject: str) -> None:
        self._last.pop(subject, None)
