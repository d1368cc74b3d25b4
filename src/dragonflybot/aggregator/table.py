"""The aggregator's state, free of I/O: latest view per venue, merged on demand.

Kept apart from the trio task so batching, exclusion and change detection are
tested by feeding updates and calling methods — no channel, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from dragonflybot.aggregator.state import VenueHealth
from dragonflybot.core.merge import Consolidated, merge
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView


class ViewTable:
    """Latest ``VenueView`` per live venue; ``VenueDown`` removes the venue.

    ``apply`` says whether the table changed, so the runner merges only when
    something did (a feed that repeats the same levels, or a second
    ``VenueDown`` for a venue already down, costs no merge and no publication).
    A ``VenueDown`` that changes an excluded venue's state or reason (stale, then
    disconnected) changes the table's ``health`` but not its book: it is published
    without a merge.
    """

    __slots__ = ("_depth", "_dirty", "_down", "_down_changes", "_excluded", "_views")

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._depth = depth
        self._views: dict[str, VenueView] = {}
        self._down: dict[str, VenueHealth] = {}
        self._down_changes = 0
        self._excluded: tuple[VenueHealth, ...] | None = ()
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

    @property
    def down_changes(self) -> int:
        """Counts changes of the excluded venues' states: a cheap test for "anything new"."""
        return self._down_changes

    def views(self) -> Iterable[VenueView]:
        return self._views.values()

    def apply(self, update: VenueUpdate) -> bool:
        """Record one update; True if the table changed."""
        views = self._views
        if isinstance(update, VenueDown):
            return self._apply_down(update)
        if update.same_levels(views.get(update.venue)):
            # Keep the newer receive time without forcing a merge.
            views[update.venue] = update
            return False
        views[update.venue] = update
        if self._down.pop(update.venue, None) is not None:
            self._excluded = None
        self._dirty = True
        return True

    def _apply_down(self, update: VenueDown) -> bool:
        venue = update.venue
        view = self._views.pop(venue, None)
        known = self._down.get(venue)
        if view is not None:
            last_ns: int | None = view.recv_ns
        elif known is not None:
            last_ns = known.last_update_ns
        else:
            return False  # never heard of: it is simply not in the book
        health = VenueHealth(venue, update.state, last_ns, update.reason)
        if view is None and health == known:
            return False
        self._down[venue] = health
        self._down_changes += 1
        self._excluded = None
        if view is not None:
            self._dirty = True
        return True

    def excluded(self) -> tuple[VenueHealth, ...]:
        """The venues heard of but not live (kept until one changes: most states share it)."""
        excluded = self._excluded
        if excluded is None:
            down = self._down
            excluded = self._excluded = tuple(down[name] for name in sorted(down))
        return excluded

    def live_views(self) -> tuple[VenueView, ...]:
        """The live venues' current views (in no particular order)."""
        return tuple(self._views.values())

    def merge(self) -> Consolidated:
        """The consolidated top N of the live venues; clears ``dirty``."""
        self._dirty = False
        return merge(self._views.values(), self._depth)

    def newest_recv_ns(self) -> int | None:
        return max((v.recv_ns for v in self._views.values()), default=None)
