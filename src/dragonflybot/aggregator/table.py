"""The aggregator's state, free of I/O: latest view per venue, merged on demand.

Kept apart from the trio task so batching, exclusion and change detection are
tested by feeding updates and calling methods — no channel, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from dragonflybot.core.merge import Consolidated, merge
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView


class ViewTable:
    """Latest ``VenueView`` per live venue; ``VenueDown`` removes the venue.

    ``apply`` says whether the table changed, so the runner merges only when
    something did (a feed that repeats the same levels, or a second
    ``VenueDown`` for a venue already down, costs no merge and no publication).
    """

    __slots__ = ("_depth", "_dirty", "_views")

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._depth = depth
        self._views: dict[str, VenueView] = {}
        self._dirty = False

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def live(self) -> frozenset[str]:
        return frozenset(self._views)

    @property
    def dirty(self) -> bool:
        """Something changed since the last ``merge``."""
        return self._dirty

    def views(self) -> Iterable[VenueView]:
        return self._views.values()

    def apply(self, update: VenueUpdate) -> bool:
        """Record one update; True if the table changed."""
        views = self._views
        if isinstance(update, VenueDown):
            if views.pop(update.venue, None) is None:
                return False
        else:
            if update.same_levels(views.get(update.venue)):
                # Keep the newer receive time without forcing a merge.
                views[update.venue] = update
                return False
            views[update.venue] = update
        self._dirty = True
        return True

    def merge(self) -> Consolidated:
        """The consolidated top N of the live venues; clears ``dirty``."""
        self._dirty = False
        return merge(self._views.values(), self._depth)

    def newest_recv_ns(self) -> int | None:
        return max((v.recv_ns for v in self._views.values()), default=None)
