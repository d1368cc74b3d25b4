"""Turns a venue book into ``VenueView``/``VenueDown`` updates, forwarding only real changes.

The aggregator re-merges on every update it gets, so a venue message that did not
move this venue's top N (a change deeper in the book, a refreshed identical
snapshot) must cost it nothing. After the venue was reported down (disconnected,
resyncing, stale) the next view is sent even if its levels are unchanged: the
aggregator has excluded the venue and needs a view to take it back.
"""

from __future__ import annotations

from dragonflybot.core.view import DownState, VenueDown, VenueUpdate, VenueView
from dragonflybot.feed.stats import FeedStats
from dragonflybot.mailbox import Mailbox
from dragonflybot.venues.base import VenueProtocol


class ViewPublisher:
    """The change-forwarder of one feed; writes into the feed's latest-value slot."""

    __slots__ = ("_depth", "_down", "_down_state", "_last", "_slot", "_stats", "venue")

    def __init__(
        self, venue: str, depth: int, slot: Mailbox[VenueUpdate], stats: FeedStats
    ) -> None:
        self.venue = venue
        self._depth = depth
        self._slot = slot
        self._stats = stats
        self._last: VenueView | None = None
        self._down: str | None = "not connected yet"
        self._down_state: DownState = "syncing"

    @property
    def last(self) -> VenueView | None:
        """The last view sent (``None`` before the first)."""
        return self._last

    @property
    def down_reason(self) -> str | None:
        """Why the venue is reported down, or ``None`` while its view is current."""
        return self._down

    def publish(self, protocol: VenueProtocol, event_time_ms: int | None, recv_ns: int) -> bool:
        """Send the protocol's current top N if it changed (or the venue was down)."""
        bids, asks = protocol.top(self._depth)
        last = self._last
        if (
            self._down is None
            and last is not None
            # Identity first: a book hands back the tuples of its previous read while no
            # change reached its top N, which is most frames; equal contents are the rest.
            and (bids is last.bids or bids == last.bids)
            and (asks is last.asks or asks == last.asks)
        ):
            return False
        view = VenueView(self.venue, bids, asks, event_time_ms, recv_ns, protocol.venue_seq)
        self._last = view
        self._down = None
        stats = self._stats
        if self._slot.put(view):
            stats.conflated += 1
        stats.forwarded += 1
        return True

    def down(self, reason: str, state: DownState = "down") -> None:
        """Report the venue's book as not valid (``state``: why, for clients).

        Sent on the transition from published to down, and again when the state of a
        venue already down changes (stale, then disconnected): the aggregator then
        publishes the new state without a merge. Never before the first view: the
        aggregator never saw the venue, so there is nothing to exclude.
        """
        was_up = self._down is None and self._last is not None
        changed = self._last is not None and state != self._down_state
        self._down = reason
        self._down_state = state
        if was_up or changed:
            self._put(VenueDown(self.venue, reason, state))
            self._stats.downs += 1

    def _put(self, update: VenueUpdate) -> None:
        if self._slot.put(update):
            self._stats.conflated += 1
