"""When each simulated update is due, and the model time it carries.

Sans-I/O: the driver passes trio's clock in, the schedule answers. Update ``k`` (1-based,
counted since the last resume) is due at ``base + k / rate``; its model time is the Unix
time that moment corresponds to. Both come from integer counts, never accumulated float
sums, and pauses do not advance model time, so the same seed and epoch give the same
timestamps on every run.
"""

from __future__ import annotations

from dragonflybot.errors import ConfigError


class Schedule:
    """Due times of one market's updates at ``rate`` updates per second."""

    __slots__ = ("_base_ns", "_base_t", "_count", "_paused_at", "rate")

    def __init__(self, rate: float, start: float, epoch_ns: int) -> None:
        if not rate > 0:
            raise ConfigError(f"update rate must be > 0, got {rate!r}")
        self.rate = rate
        self._base_t = start
        self._base_ns = epoch_ns
        self._count = 0
        self._paused_at: float | None = None

    @property
    def next_due(self) -> float:
        """Trio time at which the next update is due."""
        return self._base_t + (self._count + 1) / self.rate

    def take(self) -> int:
        """Consume the next update slot; returns its model time (Unix ns)."""
        self._count += 1
        return self._base_ns + round(self._count * 1e9 / self.rate)

    def pause(self, now: float) -> None:
        if self._paused_at is None:
            self._paused_at = now

    def resume(self, now: float) -> None:
        """Shift the due times by the pause, so resuming does not burst the missed updates.

        Model time stands still while paused: it counts active time only, so the messages
        stay identical however long a test pauses (timestamps lag the wall clock by the
        total pause)."""
        if self._paused_at is not None:
            self._base_t += now - self._paused_at
            self._paused_at = None

    def skip(self, seconds: float) -> None:
        """Move every future due time (and model time) ``seconds`` later."""
        if seconds > 0:
            self._base_t += seconds
            self._base_ns += round(seconds * 1e9)
