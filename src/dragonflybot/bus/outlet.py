"""What a role hands to the bus: venue updates from a feed, book states from an aggregator.

Both are synchronous and never wait (``BusPublisher.publish`` only fills a
latest-value slot), so they drop in where the in-process program hands values
to a queue: ``ViewOutlet.publish`` where a feed's updates are forwarded to the
aggregator channel, ``BookOutlet`` as the aggregator's ``Publisher``.
"""

from __future__ import annotations

from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.convert import book_message, down_message, view_message
from dragonflybot.bus.publisher import BusPublisher
from dragonflybot.bus.subjects import book_subject, view_subject
from dragonflybot.core.view import VenueDown, VenueUpdate


class ViewOutlet:
    """A feed's updates for one instrument, onto ``view.<venue>.<instrument>``."""

    __slots__ = ("_publisher", "_subjects", "instrument")

    def __init__(self, publisher: BusPublisher, instrument: str) -> None:
        self._publisher = publisher
        self.instrument = instrument
        self._subjects: dict[str, str] = {}

    def publish(self, update: VenueUpdate) -> None:
        subject = self._subjects.get(update.venue)
        if subject is None:
            subject = self._subjects[update.venue] = view_subject(update.venue, self.instrument)
        if isinstance(update, VenueDown):
            self._publisher.publish(subject, down_message(update, self.instrument))
        else:
            body = view_message(update, self.instrument)
            self._publisher.publish(subject, body)


class BookOutlet:
    """An aggregator ``Publisher`` that puts each state on ``book.<instrument>``.

    ``close`` does not close the bus publisher: several aggregators (one per
    instrument) share it, and the process closes it once they are done.
    """

    __slots__ = ("_publisher", "_subject", "instrument")

    def __init__(self, publisher: BusPublisher, instrument: str) -> None:
        self._publisher = publisher
        self.instrument = instrument
        self._subject = book_subject(instrument)

    def publish(self, state: BookState, /) -> None:
        self._publisher.publish(self._subject, book_message(state, self.instrument))

    def close(self) -> None:
        pass
