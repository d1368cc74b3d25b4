"""One clock for every capped stream: ``--client-max-rate`` without a timer per stream.

A stream that sleeps out its own interval after each send pays for a trio deadline (a
cancel scope registered, expired and unwound) every time: ~15 % of the core with 100
clients at 150 Summaries/s each (py-spy). A ``Ticker`` has one deadline for all of them,
and no background task to start or to forget: the first stream waiting keeps the time
for the rest, and hands the job to another one when it leaves.

The streams are spread over ``phases``, each woken on its own tick: waking all of them on
one tick made one long scheduler round per interval (100 streams' sends back to back),
which kept the aggregator waiting and cut its publications from ~510/s to ~290/s in the
fan-out benchmark; ten smaller rounds leave it room between them.
"""

from __future__ import annotations

import math

import trio

from dragonflybot.errors import ConfigError

PHASES = 10


class Ticker:
    """``wait(phase)`` returns at that phase's next tick: once per ``interval`` per phase.

    The phases' ticks are ``interval / phases`` apart, round robin. ``phase()`` hands out
    phases in turn, so streams spread evenly.
    """

    __slots__ = ("_assigned", "_counts", "_keeper", "_lots", "_next", "_step", "_tick", "interval")

    def __init__(self, rate: float, *, phases: int = PHASES) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ConfigError(f"tick rate must be a positive number, got {rate}")
        if phases < 1:
            raise ConfigError(f"phases must be >= 1, got {phases}")
        self.interval = 1.0 / rate
        self._step = self.interval / phases
        self._lots = [trio.lowlevel.ParkingLot() for _ in range(phases)]
        self._counts = [0] * phases
        self._keeper = False
        self._next: float | None = None
        self._tick = 0
        self._assigned = 0

    @property
    def ticks(self) -> int:
        """Ticks so far, all phases together."""
        return self._tick

    def phase(self) -> int:
        """The phase for a new waiter (round robin)."""
        phase = self._assigned % len(self._lots)
        self._assigned += 1
        return phase

    async def wait(self, phase: int = 0) -> None:
        """Return at ``phase``'s next tick (a late tick is not made up)."""
        counts = self._counts
        seen = counts[phase]
        while counts[phase] == seen:
            if self._keeper:
                await self._lots[phase].park()
                continue
            self._keeper = True
            try:
                while counts[phase] == seen:
                    await self._next_tick()
            finally:
                self._keeper = False
                self._hand_over(phase)

    async def _next_tick(self) -> None:
        now = trio.current_time()
        if self._next is None or self._next < now - self.interval:
            # First tick, or the keeper was away (nobody waiting, or an overloaded core).
            self._next = now + self._step
        await trio.sleep_until(self._next)
        self._next += self._step
        phase = self._tick % len(self._lots)
        self._tick += 1
        self._counts[phase] += 1
        lot = self._lots[phase]
        if lot:
            lot.unpark_all()

    def _hand_over(self, phase: int) -> None:
        """Wake one waiter, which finds no keeper and keeps the time from now on."""
        lots = self._lots
        for i in range(1, len(lots) + 1):
            lot = lots[(phase + i) % len(lots)]
            if lot:
                lot.unpark()
                return
