"""REST snapshot requests of a diff-book sync: tokens, in-flight state and retry pacing.

Both diff venues follow the same outline (buffer the stream, fetch a snapshot,
maybe fetch again) and differ only in how they order messages; this is the shared
bookkeeping of the "fetch" half, so each venue module holds only its own rules.
"""

from __future__ import annotations

from typing import Final

from dragonflybot.venues.base import FetchSnapshot

MAX_DELAY: Final = 5.0


def retry_delay(attempt: int) -> float:
    """0 for the first request of a sync, then 0.5, 1, 2, 4, 5, 5 ... seconds.

    A snapshot too old for the buffered stream usually means the venue's REST
    cache lags its stream by a moment; asking again at once would spend request
    weight on the same stale answer, and a venue answering garbage must never
    drive a tight loop.
    """
    if attempt <= 0:
        return 0.0
    return float(min(0.5 * 2 ** (attempt - 1), MAX_DELAY))


class SnapshotRequests:
    """Which snapshot request is current, and how long to wait before the next one."""

    __slots__ = ("attempt", "in_flight", "params", "token", "url")

    def __init__(self, url: str, params: tuple[tuple[str, str], ...] = ()) -> None:
        self.url = url
        self.params = params
        self.token = 0
        self.in_flight = False
        self.attempt = 0

    def request(self) -> FetchSnapshot:
        """A new request; any earlier one still in flight is superseded."""
        self.token += 1
        self.in_flight = True
        delay = retry_delay(self.attempt)
        self.attempt += 1
        return FetchSnapshot(self.url, self.params, self.token, delay)

    def answer(self, token: int) -> bool:
        """A body arrived for ``token``: True when it answers the current request."""
        if token != self.token or not self.in_flight:
            return False
        self.in_flight = False
        return True

    def cancel(self) -> None:
        """Forget the current request (reconnect, overflow); its answer will be ignored."""
        self.token += 1
        self.in_flight = False
        self.attempt = 0

    def done(self) -> None:
        """The book synced: the next sync starts with an immediate request again."""
        self.attempt = 0
