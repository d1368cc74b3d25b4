"""Sans-I/O rules: subject names, bus URLs, sequence verdicts, staleness."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.bus.connection import BusConfig, describe, is_bus_failure
from dragonflybot.bus.sequence import SequenceTracker, Verdict
from dragonflybot.bus.staleness import StalenessWatch
from dragonflybot.bus.subjects import BusNames, book_subject, feed_subject, view_subject
from dragonflybot.errors import ConfigError


def test_subjects_channels_and_keys_share_a_hash_tag() -> None:
    names = BusNames("dfb")
    subject = view_subject("binance", "BTC-USDT")
    assert subject == "view.binance.BTC-USDT"
    assert names.channel(subject) == "dfb:{view.binance.BTC-USDT}"
    assert names.key(subject) == "dfb:{view.binance.BTC-USDT}:latest"
    assert names.subject_of(names.channel(subject).encode()) == subject
    assert names.subject_of("other:{x}") is None
    assert feed_subject("kraken") == "feed.kraken"
    assert book_subject("ETH-BTC") == "book.ETH-BTC"


@pytest.mark.parametrize("bad", ["", "a.b", "a{b", "a}b", "a b", "é", "x" * 65])
def test_bad_names_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        view_subject(bad, "BTC-USDT")
    with pytest.raises(ConfigError):
        book_subject(bad)


def test_bus_urls() -> None:
    one = BusConfig.from_url("redis://10.0.0.5:6380/2")
    assert (one.host, one.port, one.db, one.cluster, one.tls) == ("10.0.0.5", 6380, 2, False, False)
    assert one.url == "redis://10.0.0.5:6380/2"
    many = BusConfig.from_url("rediss+cluster://redis.internal", prefix="prod")
    assert (many.port, many.cluster, many.tls, many.names.prefix) == (6379, True, True, "prod")
    for bad in ["http://x", "redis://", "redis://x:99999", "redis://x/abc", "redis+cluster://x/1"]:
        with pytest.raises(ConfigError):
            BusConfig.from_url(bad)
    with pytest.raises(ConfigError):
        BusConfig.from_url("redis://x", timeout=0)
    with pytest.raises(ConfigError):
        BusConfig.from_url("redis://x", prefix="has space")


def test_failure_classification_keeps_cancellation_and_bugs_apart() -> None:
    import coredis.exceptions
    import trio

    assert is_bus_failure(coredis.exceptions.ConnectionError("lost"))
    assert is_bus_failure(ExceptionGroup("g", [ConnectionResetError(), trio.TooSlowError()]))
    assert not is_bus_failure(ExceptionGroup("g", [ConnectionResetError(), KeyError("bug")]))
    assert not is_bus_failure(ValueError("bug"))
    assert describe(ExceptionGroup("g", [ConnectionRefusedError("refused")])) == (
        "ConnectionRefusedError: refused"
    )


def test_sequence_verdicts() -> None:
    tracker = SequenceTracker()
    assert tracker.check("s", 1, 5) is Verdict.NEXT  # first sight: any number
    assert tracker.check("s", 1, 6) is Verdict.NEXT
    assert tracker.check("s", 1, 6) is Verdict.STALE
    assert tracker.check("s", 1, 4) is Verdict.STALE
    assert tracker.check("s", 1, 9) is Verdict.GAP
    assert tracker.check("s", 2, 1) is Verdict.NEXT  # a restarted publisher
    assert tracker.last("s") == (2, 1)
    assert tracker.check("t", 2, 1) is Verdict.NEXT  # subjects are independent
    tracker.forget("s")
    assert tracker.last("s") is None


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 20)), max_size=60))
def test_delivered_sequences_only_move_forward_within_an_epoch(
    arrivals: list[tuple[int, int]],
) -> None:
    tracker = SequenceTracker()
    delivered: list[tuple[int, int]] = []
    for epoch, seq in arrivals:
        verdict = tracker.check("s", epoch, seq)
        if verdict is not Verdict.STALE:
            if delivered and delivered[-1][0] == epoch:
                assert seq > delivered[-1][1]
                assert (verdict is Verdict.GAP) == (seq > delivered[-1][1] + 1)
            delivered.append((epoch, seq))
        else:
            assert delivered and delivered[-1][0] == epoch and seq <= delivered[-1][1]


def test_staleness_watch() -> None:
    watch = StalenessWatch(3.0)
    assert watch.next_deadline() is None
    watch.seen("a", 0.0, 0.0)
    watch.seen("b", 1.0, 1.0)
    assert watch.next_deadline() == 3.0
    assert watch.expire(2.9) == []
    assert watch.expire(3.0) == ["a"]
    assert watch.expire(3.5) == []  # reported once
    assert not watch.is_live("a", 3.5) and watch.is_live("b", 3.5)
    watch.seen("a", 3.6, 3.6)
    assert watch.stale == frozenset() and watch.is_live("a", 3.6)
    # Old news (a latest value sent long ago) neither revives nor rewinds a venue.
    watch.seen("c", -10.0, 4.0)
    assert not watch.is_live("c", 4.0)
    assert sorted(watch.expire(4.0)) == ["b", "c"]
    with pytest.raises(ConfigError):
        StalenessWatch(0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 10)), max_size=40))
def test_a_venue_is_live_exactly_when_heard_within_stale_after(
    events: list[tuple[str, float]],
) -> None:
    watch = StalenessWatch(2.0)
    last: dict[str, float] = {}
    now = 0.0
    for venue, step in events:
        now += step
        watch.seen(venue, now, now)
        last[venue] = now
        stale = set(watch.expire(now)) | watch.stale
        for v, at in last.items():
            # The watch's own expression (``at + stale_after``, see ``is_live``): ``now - at``
            # differs by a rounding step (hypothesis found 8.9706... - 6.9706... < 2.0).
            assert watch.is_live(v, now) == (now < at + 2.0)
            assert (v in stale) == (now >= at + 2.0)


@given(
    at=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    stale_after=st.floats(min_value=1e-3, max_value=3600, allow_nan=False),
)
def test_at_its_deadline_a_venue_is_stale(at: float, stale_after: float) -> None:
    """The deadline a waiter sleeps until always expires the venue: no rounding step in which
    the deadline has passed but the venue still counts as live (an ingest would spin)."""
    watch = StalenessWatch(stale_after)
    watch.seen("v", at, at)
    deadline = watch.next_deadline()
    assert deadline is not None
    assert not watch.is_live("v", deadline)
    assert watch.expire(deadline) == ["v"]
    assert watch.next_deadline() is None
