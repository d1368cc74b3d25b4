"""In-process values to bus bodies and back: views <-> ``ViewMsg``, book states <-> ``BookMsg``.

In-process times are ``time.monotonic_ns()`` (meaningless in another process);
on the bus they are wall-clock Unix ns. The conversions translate with the two
clocks read side by side, so a latency measured across processes is
receive-to-delivery on the wall clock (exact on one machine, within the clock
sync between machines).
"""

from __future__ import annotations

import time
from typing import Final

from dragonflybot.aggregator.state import BookState
from dragonflybot.bus.codec import (
    BookMsg,
    DownMsg,
    ViewMsg,
    levels_of,
    merged_levels_of,
    split_fixed,
    wire_levels,
    wire_merged_levels,
)
from dragonflybot.core.book import Level
from dragonflybot.core.merge import Consolidated, MergedLevel
from dragonflybot.core.view import VenueDown, VenueView

_UINT64_MAX: Final = 2**64 - 1


def mono_to_wall(mono_ns: int) -> int:
    """A ``time.monotonic_ns()`` instant as Unix ns."""
    return time.time_ns() - (time.monotonic_ns() - mono_ns)


def wall_to_mono(wall_ns: int) -> int:
    """A Unix-ns instant as ``time.monotonic_ns()``."""
    return time.monotonic_ns() - (time.time_ns() - wall_ns)


def view_message(view: VenueView, instrument: str) -> ViewMsg:
    """What a feed publishes for ``view`` (subject ``view_subject(view.venue, instrument)``),
    with the venue's sequence and event time as the view carries them."""
    venue_seq = view.venue_seq
    if venue_seq is not None and not 0 <= venue_seq <= _UINT64_MAX:
        # Venue numbers are parsed unbounded; one msgpack cannot carry (no venue sends
        # one) goes as "no sequence" rather than failing the whole publish.
        venue_seq = None
    return ViewMsg(
        view.venue,
        instrument,
        wire_levels(view.bids),
        wire_levels(view.asks),
        venue_seq,
        view.event_time_ms,
        mono_to_wall(view.recv_ns),
    )


def down_message(down: VenueDown, instrument: str) -> DownMsg:
    return DownMsg(down.venue, instrument, down.reason)


def venue_view(msg: ViewMsg) -> VenueView:
    """The aggregator's ``VenueView`` for a received view (``recv_ns`` back on this
    process's monotonic clock, so the aggregator's latency histogram spans the bus)."""
    return VenueView(
        msg.venue,
        tuple(Level(p, a) for p, a in levels_of(msg.bids)),
        tuple(Level(p, a) for p, a in levels_of(msg.asks)),
        msg.exchange_ms,
        wall_to_mono(msg.recv_ns),
        msg.venue_seq,
    )


def book_message(state: BookState, instrument: str) -> BookMsg:
    """What an aggregator publishes for ``state`` (subject ``book_subject(instrument)``)."""
    book = state.book
    return BookMsg(
        instrument,
        state.seq,
        tuple(sorted(state.live)),
        wire_merged_levels(book.bids),
        wire_merged_levels(book.asks),
        split_fixed(book.spread) if book.spread is not None else None,
        mono_to_wall(state.newest_recv_ns) if state.newest_recv_ns is not None else None,
        mono_to_wall(state.published_ns),
    )


def consolidated(msg: BookMsg) -> Consolidated:
    """The consolidated book a received ``BookMsg`` carries (spread already checked)."""
    bids = tuple(MergedLevel(v, p, a) for v, p, a in merged_levels_of(msg.bids))
    asks = tuple(MergedLevel(v, p, a) for v, p, a in merged_levels_of(msg.asks))
    spread = asks[0].price - bids[0].price if bids and asks else None
    return Consolidated(bids, asks, spread)


def book_state(msg: BookMsg, seq: int) -> BookState:
    """A gateway's ``BookState`` for a received book, numbered ``seq`` by the gateway
    (its clients count skipped states by its own consecutive numbers)."""
    newest = wall_to_mono(msg.newest_recv_ns) if msg.newest_recv_ns is not None else None
    return BookState(
        seq, wall_to_mono(msg.published_ns), consolidated(msg), frozenset(msg.live), newest
    )
