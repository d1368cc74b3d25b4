"""Which venues have gone quiet on the bus: the consumer-side liveness rule.

Sans-I/O (the caller passes ``now``, any monotonic clock). A feed process sends a
view on every change and a heartbeat while the venue is quiet, so a venue from
which *nothing* arrives for ``stale_after`` seconds has a dead or cut-off feed
process: its last view must not be merged any more. Times are the consumer's
own receive times, so clock differences between machines play no part.
"""

from __future__ import annotations

from dragonflybot.errors import ConfigError


class StalenessWatch:
    """Newest sign of life per venue; ``expire`` reports each venue once when it goes stale.

    ``seen`` takes the time the sign of life was *sent* on the caller's clock:
    ``now`` for a message off the stream, earlier for a latest value read from
    Redis (an old heartbeat proves nothing about the present).
    """

    __slots__ = ("_seen", "_stale", "stale_after")

    def __init__(self, stale_after: float) -> None:
        if not stale_after > 0:
            raise ConfigError(f"stale_after must be positive, got {stale_after}")
        self.stale_after = stale_after
        self._seen: dict[str, float] = {}
        self._stale: set[str] = set()

    @property
    def stale(self) -> frozenset[str]:
        """Venues reported by ``expire`` and not seen since."""
        return frozenset(self._stale)

    def seen(self, venue: str, at: float, now: float) -> None:
        """Record a sign of life from ``venue`` sent at ``at`` (older news never wins)."""
        if at > self._seen.get(venue, float("-inf")):
            self._seen[venue] = at
        if venue in self._stale and self.is_live(venue, now):
            self._stale.discard(venue)

    def is_live(self, venue: str, now: float) -> bool:
        """Heard from within ``stale_after`` of ``now``."""
        at = self._seen.get(venue)
        # The same expression as ``next_deadline`` (``at + stale_after``), never ``now - at``:
        # the two differ by a rounding step, and a deadline reached while the venue still
        # counted as live would wake its waiter again at once, forever.
        return at is not None and now < at + self.stale_after

    def expire(self, now: float) -> list[str]:
        """Venues that went stale since the last call (each reported once)."""
        newly = [
            venue
            for venue, at in self._seen.items()
            if venue not in self._stale and now >= at + self.stale_after
        ]
        self._stale.update(newly)
        return newly

    def next_deadline(self) -> float | None:
        """When the next venue goes stale if nothing arrives (``None``: nothing to watch)."""
        return min(
            (at + self.stale_after for v, at in self._seen.items() if v not in self._stale),
            default=None,
        )
