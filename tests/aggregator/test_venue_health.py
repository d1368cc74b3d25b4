"""Venue states and last-update times in the published states (what v1 clients see)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.aggregator import Aggregator, BookState
from dragonflybot.aggregator.state import VenueHealth
from dragonflybot.core.merge import merge
from dragonflybot.core.view import VenueDown, VenueUpdate, VenueView

from .conftest import make_view


class Recorder:
    def __init__(self) -> None:
        self.states: list[BookState] = []

    def publish(self, state: BookState, /) -> None:
        self.states.append(state)

    def close(self) -> None:
        pass


def test_live_venues_carry_their_last_receive_time() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    state = agg.apply_batch([make_view("binance", recv_ns=10), make_view("bitstamp", recv_ns=20)])
    assert state is not None
    assert state.venues == (
        VenueHealth("binance", "live", 10),
        VenueHealth("bitstamp", "live", 20),
    )
    assert sorted(v.venue for v in state.views) == ["binance", "bitstamp"]


def test_a_down_venue_keeps_its_last_update_and_says_why() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    agg.apply_batch([make_view("binance", recv_ns=10), make_view("bitstamp", recv_ns=20)])
    state = agg.apply_batch([VenueDown("bitstamp", "stale", "stale")])
    assert state is not None
    assert state.venues[1] == VenueHealth("bitstamp", "stale", 20, "stale")
    assert state.excluded == (VenueHealth("bitstamp", "stale", 20, "stale"),)
    assert [v.venue for v in state.views] == ["binance"]


def test_a_state_change_of_an_excluded_venue_is_published_without_a_merge() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    agg.apply_batch([make_view("binance", recv_ns=10), make_view("bitstamp", recv_ns=20)])
    stale = agg.apply_batch([VenueDown("bitstamp", "stale", "stale")])
    merges = agg.stats.merges
    down = agg.apply_batch([VenueDown("bitstamp", "disconnected: reset", "down")])
    assert stale is not None and down is not None
    assert agg.stats.merges == merges
    assert down.book == stale.book
    assert down.seq == stale.seq + 1
    assert down.venues[1] == VenueHealth("bitstamp", "down", 20, "disconnected: reset")
    # The same again is no change.
    assert agg.apply_batch([VenueDown("bitstamp", "disconnected: reset", "down")]) is None


def test_a_venue_never_heard_of_stays_absent() -> None:
    rec = Recorder()
    agg = Aggregator(5, rec)
    assert agg.apply_batch([VenueDown("kraken", "stale", "stale")]) is None
    state = agg.publish_current()
    assert state is not None and state.venues == ()


venues = st.sampled_from(["a", "b", "c"])
updates = st.one_of(
    st.builds(
        lambda venue, price, recv: make_view(venue, bids=((price, "1"),), recv_ns=recv),
        venues,
        st.sampled_from(["1.0", "1.1", "0.9"]),
        st.integers(0, 10**12),
    ),
    st.builds(
        VenueDown,
        venues,
        st.sampled_from(["stale", "resync: gap", "disconnected: eof"]),
        st.sampled_from(["syncing", "stale", "down"]),
    ),
)


@given(st.lists(st.lists(updates, min_size=1, max_size=4), max_size=12))
def test_health_agrees_with_the_book(batches: list[list[VenueUpdate]]) -> None:
    """Invariant: live in ``venues`` == ``live`` == the views merged; times are the views'.

    (A view with unchanged levels is not published, so a state's times are those of
    the views it holds, not of every frame.)
    """
    rec = Recorder()
    agg = Aggregator(5, rec)
    heard: set[str] = set()
    for batch in batches:
        agg.apply_batch(batch)
        heard |= {u.venue for u in batch if isinstance(u, VenueView)}
        state = agg.publish_current() or (rec.states[-1] if rec.states else None)
        if state is None:
            continue
        live = {h.venue for h in state.venues if h.state == "live"}
        assert live == state.live == {v.venue for v in state.views}
        assert [h.venue for h in state.venues] == sorted(h.venue for h in state.venues)
        views = {v.venue: v for v in state.views}
        for health in state.venues:
            assert health.venue in heard
            if health.state == "live":
                assert health.reason is None
                assert health.last_update_ns == views[health.venue].recv_ns
            else:
                assert health.reason is not None and health.last_update_ns is not None
        assert merge(state.views, 5) == state.book
