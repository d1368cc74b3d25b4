"""One clock for every capped stream: ``--client-max-rate`` without a timer per stream.

A stream that sleeps out its own interval after each send pays for a trio deadline (a
cancel scope registered, expired and unwound) every time: ~15 % of the core with 100
clients at 150 Summaries/s each (py-spy). A ``Ticker`` has one deadline for all of them:
the streams park on one lot and the first one waiting keeps the time for the rest, so
there is no background task to start or to forget. If that stream goes away (its client
disconnected) the others are woken and one of them takes over.
"""

from __future__ import annotations

import trio

from dragonflybot.errors import ConfigError


class Ticker:
    """Ticks ``rate`` times per second while anyone waits; ``wait`` returns at the next tick."""

    __slots__ = ("_keeper", "_lot", "_next", "_ticks", "interval")

    def __init__(self, rate: float) -> None:
        if not rate > 0 or rate == float("inf"):
            raise ConfigError(f"tick rate must be a positive number, got {rate}")
        self.interval = 1.0 / rate
        self._lot = trio.lowlevel.ParkingLot()
        self._keeper = False
        self._next: float | None = None
        self._ticks = 0

    @property
    def ticks(self) -> int:
        """Ticks so far."""
        return self._ticks

    async def wait(self) -> None:
        """Return at the next tick (ticks are ``interval`` apart; a late one is not made up)."""
        seen = self._ticks
        while self._ticks == seen:
            if self._keeper:
                await self._lot.park()
                continue
            self._keeper = True
            try:
                now = trio.current_time()
                if self._next is None or self._next < now:
                    self._next = now + self.interval
                await trio.sleep_until(self._next)
                self._ticks += 1
                self._next += self.interval
            finally:
                # Wakes the others for the tick, or, if this keeper was cancelled, so
                # that one of them keeps the time from now on.
                self._keeper = False
                self._lot.unpark_all()
