"""Reconnect delays: exponential backoff with full jitter, reset after a healthy connection.

Sans-I/O on purpose: the caller owns the clock and the sleeping, so the schedule is tested without
time passing and the feed decides what "healthy" means (it reports ``connected`` once the
subscription is acknowledged). Full jitter (AWS architecture blog, "Exponential Backoff And
Jitter") spreads many clients that lost the same venue at the same moment instead of having them
retry in lockstep.
"""

from __future__ import annotations

import random

from dragonflybot.errors import ConfigError

# 2.0 ** this is finite; past it the ceiling is the cap anyway for any sane base.
_MAX_EXPONENT = 1000


class Backoff:
    """Delay before reconnect attempt n: ``uniform(0, min(cap, base * 2**n))``.

    ``connected(now)`` marks a connection as established and ``disconnected(now)`` as lost; when
    it had stayed up for at least ``reset_after`` seconds the attempt counter starts again from
    zero, so a venue that drops once a day is retried quickly while one that flaps keeps backing
    off. Times are whatever monotonic clock the caller uses (``trio.current_time()``).
    """

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        reset_after: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if not base > 0:
            raise ConfigError(f"backoff base must be positive, got {base}")
        if not cap >= base:
            raise ConfigError(f"backoff cap ({cap}) must be at least the base ({base})")
        if not reset_after >= 0:
            raise ConfigError(f"backoff reset_after must be >= 0, got {reset_after}")
        self._base = base
        self._cap = cap
        self._reset_after = reset_after
        self._rng = rng if rng is not None else random.Random()
        self._attempts = 0
        self._connected_at: float | None = None

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempts

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self._cap, self._base * 2.0 ** min(self._attempts, _MAX_EXPONENT))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling())
        self._attempts += 1
        return delay

    def connected(self, now: float) -> None:
        self._connected_at = now

    def disconnected(self, now: float) -> None:
        if self._connected_at is not None and now - self._connected_at >= self._reset_after:
            self._attempts = 0
        self._connected_at = None

    def reset(self) -> None:
        self._attempts = 0
        self._connected_at = None
