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
    """Last receive time per venue; ``expire`` reports each venue once when it goes stale."""

    __slots__ = ("_seen", "_stale", "stale_after")

    def __init__(self, stale_after: float) -> None:
        if not stale_after > 0:
            raise ConfigError(f"stale_after must be positive, got {stale_after}")
        self.stale_after = stale_after
        self._seen: dict[str, float] = {}
        self._stale: set[str] = set()

    @property
    def stale(self) -> frozenset[str]:
        return frozenset(self._stale)

    def seen(self, venue: str, now: float) -> bool:
        """Record a message from ``venue``; True when it was stale and is back."""
        self._seen[venue] = now
        if venue in self._stale:
            self._stale.discard(venue)
            return True
        return False

    def expire(self, now: float) -> list[str]:
        """Venues that went stale since the last call (each reported once)."""
        newly = [
            venue
            for venue, at in self._seen.items()
            if venue not in self._stale and now - at >= self.stale_after
        ]
        self._stale.update(newly)
        return newly

    def next_deadline(self) -> float | None:
        """When the next venue would go stale if nothing arrives (``None``: nothing to watch)."""
        return min(
            (at + self.stale_after for v, at in self._seen.items() if v not in self._stale),
            default=None,
        )
