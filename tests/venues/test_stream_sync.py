"""``StreamSync``: a book whose snapshot arrives on the stream, with an integrity hook.

A small fake venue (sequence chain + CRC32 over the top levels' wire strings, the
shape of OKX's books) drives it against a dict model: random snapshot / update /
gap / corrupt sequences either leave the book equal to the model, or discard it and
ask for a resubscription of that symbol (never a published wrong book).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.core.book import WireLevel
from dragonflybot.core.fixed import parse
from dragonflybot.venues.base import BookChanged, BookReset, Dropped, Event, Resubscribe
from dragonflybot.venues.book_sync import StreamSync

DEPTH = 5


Text = tuple[str, str]
"""A level as the venue wrote it: ``(price, size)``."""


def checksum_texts(bids: Sequence[str], asks: Sequence[str]) -> int:
    """CRC32 of the ``price:size`` texts, bids and asks interleaved."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(bids[i])
        if i < len(asks):
            parts.append(asks[i])
    return zlib.crc32(":".join(parts).encode())


def checksum(bids: list[Text], asks: list[Text]) -> int:
    return checksum_texts([f"{p}:{s}" for p, s in bids], [f"{p}:{s}" for p, s in asks])


class FakeSync(StreamSync):
    """Sequence ids must chain (``first == position + 1``); a CRC32 over the top 3."""

    def __init__(self) -> None:
        super().__init__(keep_wire=True, depth=DEPTH)

    def resubscribe_frames(self) -> tuple[str, ...]:
        return ('{"op":"unsubscribe"}', '{"op":"subscribe"}')

    def continues(self, position: int, first: int, last: int) -> bool:
        return first == position + 1

    def integrity(self) -> str | None:
        failure = super().integrity()
        if failure is not None or self.checksum is None:
            return failure
        got = checksum_texts(*self.book.wires(3))
        return None if got == self.checksum else self.checksum_mismatch(got)


def wired(levels: list[Text]) -> list[WireLevel]:
    return [(parse(p), parse(a), f"{p}:{a}") for p, a in levels]


bid_prices = st.sampled_from([f"{p}" for p in range(90, 100)])
ask_prices = st.sampled_from([f"{p}" for p in range(101, 111)])
amount = st.sampled_from(["0", "1", "2.50"])
side_levels = {
    "bids": st.lists(st.tuples(bid_prices, amount), max_size=4, unique_by=lambda lv: lv[0]),
    "asks": st.lists(st.tuples(ask_prices, amount), max_size=4, unique_by=lambda lv: lv[0]),
}
steps = st.lists(
    st.tuples(
        st.sampled_from(["snapshot", "update", "update", "update", "gap", "corrupt"]),
        side_levels["bids"],
        side_levels["asks"],
    ),
    max_size=30,
)


def model_apply(model: dict[str, str], levels: list[Text]) -> None:
    for price, size in levels:
        if parse(size):
            model[price] = size
        else:
            model.pop(price, None)


def model_top(model: dict[str, str], *, bids: bool, n: int) -> list[Text]:
    prices = sorted(model, key=parse, reverse=bids)[:n]
    return [(p, model[p]) for p in prices]


@settings(max_examples=200, deadline=None)
@given(steps)
def test_published_book_equals_the_model_or_is_resubscribed(
    script: list[tuple[str, list[Text], list[Text]]],
) -> None:
    sync = FakeSync()
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    seq = 0
    synced = False
    for kind, b, a in script:
        events: list[Event]
        if kind == "snapshot":
            seq += 1
            bids, asks = {}, {}
            model_apply(bids, [lv for lv in b if parse(lv[1])])
            model_apply(asks, [lv for lv in a if parse(lv[1])])
            bids = dict(model_top(bids, bids=True, n=DEPTH))
            asks = dict(model_top(asks, bids=False, n=DEPTH))
            snap_b = model_top(bids, bids=True, n=DEPTH)
            snap_a = model_top(asks, bids=False, n=DEPTH)
            expected = checksum(model_top(bids, bids=True, n=3), model_top(asks, bids=False, n=3))
            events = sync.on_wire_snapshot(seq, wired(snap_b), wired(snap_a), None, expected)
            synced = True
        else:
            first = seq + (2 if kind == "gap" else 1)
            seq = first
            model_apply(bids, b)
            model_apply(asks, a)
            bids = dict(model_top(bids, bids=True, n=DEPTH))
            asks = dict(model_top(asks, bids=False, n=DEPTH))
            good = checksum(model_top(bids, bids=True, n=3), model_top(asks, bids=False, n=3))
            expected = good + 1 if kind == "corrupt" else good
            events = sync.on_wire_update(first, seq, wired(b), wired(a), None, expected)
        types = [type(e) for e in events]
        if not synced:
            assert types == [Dropped] and sync.position is None
            continue
        if kind in ("gap", "corrupt"):
            # A break of the chain or a checksum mismatch: discarded, that symbol resubscribed.
            assert types == [BookReset, Resubscribe], (kind, events)
            resubscribe = events[1]
            assert isinstance(resubscribe, Resubscribe)
            assert resubscribe.frames == FakeSync().resubscribe_frames()
            assert sync.position is None and sync.book.depth == (0, 0)
            synced = False
            continue
        assert types == [BookChanged], events
        assert sync.book.bids_dict() == {parse(p): parse(s) for p, s in bids.items()}
        assert sync.book.asks_dict() == {parse(p): parse(s) for p, s in asks.items()}
    assert sync.counters.integrity_failures == sync.counters.resubscribes


def test_update_before_snapshot_is_dropped_and_counted() -> None:
    sync = FakeSync()
    assert [type(e) for e in sync.on_update(1, 1, [], [], None)] == [Dropped]
    assert sync.counters.dropped == 1 and sync.position is None
