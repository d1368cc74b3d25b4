"""Hypothesis: hostile input never raises out of the Kraken and OKX protocols nor corrupts a book.

Arbitrary bytes, arbitrary JSON, and close mutations of valid frames (a key
deleted, a value replaced by any JSON value or a number-like string) are fed to a
live protocol. After every frame: no exception; and the protocol either still holds
exactly the book it held, or holds a book it just verified against the frame's
checksum (the mutation kept the frame valid; or for OKX made it ``0``, "no checksum"
as OKX sends since 2026, when only the sequence chain guards), or holds no book and
said so (``BookReset``), having asked to resubscribe.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragonflybot.core.fixed import parse
from dragonflybot.sim import kraken_wire, okx_wire
from dragonflybot.venues.base import BookChanged, BookReset, Event
from dragonflybot.venues.kraken import KrakenProtocol
from dragonflybot.venues.okx import OkxProtocol

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
number_like = st.from_regex(
    r"-?[0-9]{0,4}(\.[0-9]{0,20})?([eE]-?[0-9])?", fullmatch=True
) | st.sampled_from(["NaN", "inf", "-0", " 1", "\u0661", "1_000", "", "."])
replacement = json_values | number_like


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        action = draw(st.sampled_from(["recurse", "delete", "replace"]))
        out = dict(value)
        if action == "delete":
            del out[key]
        elif action == "replace":
            out[key] = draw(replacement)
        else:
            out[key] = draw(mutated(value[key]))
        return out
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        action = draw(st.sampled_from(["recurse", "delete", "replace"]))
        out_list = list(value)
        if action == "delete":
            del out_list[index]
        elif action == "replace":
            out_list[index] = draw(replacement)
        else:
            out_list[index] = draw(mutated(value[index]))
        return out_list
    return draw(replacement)


def pa(price: str, qty: str) -> tuple[int, int]:
    return parse(price), parse(qty)


def kraken_live() -> tuple[KrakenProtocol, str]:
    protocol = KrakenProtocol("ETH-BTC", price_precision=5, qty_precision=8)
    protocol.connection_made()
    protocol.receive(kraken_wire.subscribe_ack(1, "book", "ETH/BTC", 10))
    wire = kraken_wire.KrakenBookWire("ETH/BTC", price_precision=5, qty_precision=8)
    protocol.receive(wire.snapshot([pa("0.05", "1"), pa("0.0499", "2")], [pa("0.0501", "3")]))
    assert protocol.has_book
    return protocol, wire.update([pa("0.05", "0"), pa("0.0498", "4")], [pa("0.0502", "1")])


def okx_live() -> tuple[OkxProtocol, str]:
    protocol = OkxProtocol("ETH-BTC")
    protocol.connection_made()
    protocol.receive(okx_wire.subscribe_ack("ETH-BTC"))
    wire = okx_wire.OkxBookWire("ETH-BTC")
    protocol.receive(wire.snapshot([pa("0.05", "1"), pa("0.0499", "2")], [pa("0.0501", "3")]))
    assert protocol.has_book
    return protocol, wire.update([pa("0.05", "0"), pa("0.0498", "4")], [pa("0.0502", "1")])


def check(protocol: KrakenProtocol | OkxProtocol, frame: str | bytes) -> None:
    had_book = protocol.has_book
    before = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict())
    verified = protocol.counters.verified
    events: list[Event] = protocol.receive(frame)
    kinds = [type(e) for e in events]
    if not protocol.has_book:
        # Lost just now, and said so; or already gone (an update is then dropped).
        assert BookReset in kinds if had_book else BookChanged not in kinds
        return
    after = (protocol.full_book.bids_dict(), protocol.full_book.asks_dict())
    if after != before:
        assert BookChanged in kinds
        # Verified, unless the frame says it carries no checksum (OKX's 0, as since 2026).
        assert protocol.counters.verified == verified + 1 or claimed_checksum(frame) == 0


def claimed_checksum(frame: str | bytes) -> object:
    """The frame's ``checksum``; absent counts as OKX's 0 (the field may go one day)."""
    try:
        return json.loads(frame)["data"][0].get("checksum", 0)
    except (ValueError, LookupError, TypeError, AttributeError):
        return None


@FUZZ
@given(data=st.data(), venue=st.sampled_from(["kraken", "okx"]))
def test_hostile_frames(data: st.DataObject, venue: str) -> None:
    protocol: KrakenProtocol | OkxProtocol
    protocol, valid = kraken_live() if venue == "kraken" else okx_live()
    kind = data.draw(st.sampled_from(["bytes", "json", "mutated", "mutated", "mutated"]))
    frame: str | bytes
    if kind == "bytes":
        frame = data.draw(st.binary(max_size=64))
    elif kind == "json":
        frame = json.dumps(data.draw(json_values))
    else:
        frame = json.dumps(data.draw(mutated(json.loads(valid))))
    check(protocol, frame)
    check(protocol, valid)  # and a valid frame after it is handled as ever
