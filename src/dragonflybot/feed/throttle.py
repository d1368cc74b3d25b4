"""Log the first of a burst, count the rest: a venue spewing garbage must not flood the log."""

from __future__ import annotations


class BurstLimiter:
    """Allows one event per ``window`` seconds and counts the ones it held back.

    The caller passes the time (``trio.current_time()``), so tests drive it with
    any clock.
    """

    __slots__ = ("_next", "_suppressed", "window")

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._next = float("-inf")
        self._suppressed = 0

    def allow(self, now: float) -> int | None:
        """``None`` to stay quiet; else how many were suppressed since the last allowed one."""
        if now < self._next:
            self._suppressed += 1
            return None
        self._next = now + self.window
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
