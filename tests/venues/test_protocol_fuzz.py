"""Hypothesis: hostile input never raises out of a venue protocol nor corrupts its book.

Three kinds of input per venue and mode: arbitrary bytes, arbitrary JSON (any
msgspec-encodable value, bare or inside the venue's envelope), and structurally
close mutations of a valid book frame (a key deleted, a value swapped for another
JSON value or a number-like string). After every frame the book is either exactly
what it was, or exactly the old book with the whole message applied.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dragonflybot.core.fixed import SCALE
from dragonflybot.venues.base import BookChanged, BookReset, Skipped, VenueProtocol
from dragonflybot.venues.binance import BinanceProtocol
from dragonflybot.venues.bitstamp import BitstampProtocol
from dragonflybot.venues.book_sync import CROSSED

FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
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
number_like = (
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,8})?", fullmatch=True)
    | st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,20})?([eE]-?[0-9])?", fullmatch=True)
    | (st.sampled_from(["NaN", "inf", "-0", " 1", "1 ", "\u0661", "0x10", "1_000", "", "."]))
)
replacement = json_values | number_like


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with one nested element deleted or replaced."""
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
        action = draw(st.sampled_from(["recurse", "delete", "replace", "append"]))
        out_list = list(value)
        if action == "delete":
            del out_list[index]
        elif action == "replace":
            out_list[index] = draw(replacement)
        elif action == "append":
            out_list.append(draw(replacement))
        else:
            out_list[index] = draw(mutated(value[index]))
        return out_list
    return draw(replacement)


@st.composite
def level_mutated(draw: st.DrawFn, frame: Any, keys: tuple[str, str]) -> Any:
    """``frame`` with one price or amount string swapped for a number-like string."""
    data = dict(frame["data"])
    key = draw(st.sampled_from(keys))
    levels = [list(level) for level in data[key]]
    index = draw(st.integers(0, len(levels) - 1))
    levels[index][draw(st.integers(0, 1))] = draw(number_like)
    data[key] = levels
    return frame | {"data": data}


# --- protocols in a known state ------------------------------------------------------------

BINANCE_DIFF = {
    "stream": "ethbtc@depth@100ms",
    "data": {
        "e": "depthUpdate",
        "E": 1,
        "s": "ETHBTC",
        "U": 12,
        "u": 12,
        "b": [["1.5", "2"], ["1.0", "0"]],
        "a": [["3", "0.5"], ["4", "0"]],
    },
}
BINANCE_PARTIAL = {
    "stream": "ethbtc@depth20@100ms",
    "data": {"lastUpdateId": 9, "bids": [["1.5", "2"], ["1.0", "1"]], "asks": [["3", "0.5"]]},
}
BITSTAMP_DIFF = {
    "event": "data",
    "channel": "diff_order_book_ethbtc",
    "data": {"microtimestamp": "600", "bids": [["1.5", "2"], ["1.0", "0"]], "asks": [["3", "1"]]},
}
BITSTAMP_TOP = {
    "event": "data",
    "channel": "order_book_ethbtc",
    "data": {"microtimestamp": "600", "bids": [["1.5", "2"], ["1.0", "1"]], "asks": [["3", "1"]]},
}


def binance(mode: str) -> BinanceProtocol:
    protocol = BinanceProtocol("ethbtc", mode=mode)  # type: ignore[arg-type]
    protocol.connection_made()
    acked = protocol.receive('{"result":null,"id":1}')
    if mode == "depth":
        fetch = acked[-1]  # diff mode asks for the snapshot at the ack
        first = BINANCE_DIFF | {"data": BINANCE_DIFF["data"] | {"U": 10, "u": 11}}
        assert protocol.receive(json.dumps(first)) == []
        body = {"lastUpdateId": 10, "bids": [["1.0", "1"], ["0.9", "1"]], "asks": [["4", "1"]]}
        protocol.snapshot_received(fetch.token, json.dumps(body).encode())  # type: ignore[union-attr]
    else:
        protocol.receive(json.dumps(BINANCE_PARTIAL))
    assert protocol.has_book
    return protocol


def bitstamp(mode: str) -> BitstampProtocol:
    protocol = BitstampProtocol("ethbtc", mode=mode)  # type: ignore[arg-type]
    protocol.connection_made()
    protocol.receive(
        json.dumps({"event": "bts:subscription_succeeded", "channel": protocol.channel})
    )
    first = (BITSTAMP_DIFF if mode == "depth" else BITSTAMP_TOP) | {}
    first = first | {"data": first["data"] | {"microtimestamp": "500"}}  # type: ignore[operator]
    events = protocol.receive(json.dumps(first))
    if mode == "depth":
        (fetch,) = events
        body = {"microtimestamp": "500", "bids": [["1.0", "1"], ["0.9", "1"]], "asks": [["4", "1"]]}
        protocol.snapshot_received(fetch.token, json.dumps(body).encode())  # type: ignore[union-attr]
    assert protocol.has_book
    return protocol


def book(protocol: VenueProtocol) -> tuple[Any, ...]:
    return (protocol.top_bids(10**6), protocol.top_asks(10**6))


def dec(levels: Any) -> dict[Decimal, Decimal]:
    return {Decimal(p).scaleb(-SCALE): Decimal(a).scaleb(-SCALE) for p, a in levels}


def check_well_formed(protocol: VenueProtocol) -> None:
    bids, asks = book(protocol)
    assert all(a > 0 for _, a in bids + asks)
    assert all(bids[i].price > bids[i + 1].price for i in range(len(bids) - 1))
    assert all(asks[i].price < asks[i + 1].price for i in range(len(asks) - 1))


def expected_after(
    before: tuple[Any, ...], message: Any, keys: tuple[str, str], replace: bool
) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    """The book after applying the whole ``message`` to ``before`` (Decimal reference)."""
    sides = ({}, {}) if replace else (dec(before[0]), dec(before[1]))
    for side, key in zip(sides, keys, strict=True):
        for price, amount in message[key]:
            if Decimal(amount) == 0:
                side.pop(Decimal(price), None)
            else:
                side[Decimal(price)] = Decimal(amount)
    return sides


def feed(protocol: VenueProtocol, frame: str | bytes, keys: tuple[str, str], replace: bool) -> None:
    before = book(protocol)
    events = protocol.receive(frame)  # must not raise
    after = book(protocol)
    check_well_formed(protocol)
    resets = [e for e in events if isinstance(e, BookReset)]
    if resets and resets[0].reason == CROSSED:
        # The message crossed the venue's own book: discarded, never published.
        event("crossed: book discarded")
        message = msgspec.json.decode(frame)["data"]
        bids, asks = expected_after(before, message, keys, replace)
        assert bids and asks and max(bids) >= min(asks)
        assert not protocol.has_book and after == ((), ())
        return
    if any(isinstance(e, Skipped) for e in events) or not any(
        isinstance(e, BookChanged) for e in events
    ):
        event("book unchanged")
        assert after == before, events
        return
    event("message applied")
    message = msgspec.json.decode(frame)["data"]
    bids, asks = expected_after(before, message, keys, replace)
    assert (dec(after[0]), dec(after[1])) == (bids, asks)


CASES = {
    "binance-diff": (lambda: binance("depth"), BINANCE_DIFF, ("b", "a"), False),
    "binance-snapshot": (lambda: binance("top"), BINANCE_PARTIAL, ("bids", "asks"), True),
    "bitstamp-diff": (lambda: bitstamp("depth"), BITSTAMP_DIFF, ("bids", "asks"), False),
    "bitstamp-snapshot": (lambda: bitstamp("top"), BITSTAMP_TOP, ("bids", "asks"), True),
}
case_names = st.sampled_from(sorted(CASES))


@FUZZ
@given(case_names, st.binary(max_size=200))
def test_arbitrary_bytes(case: str, frame: bytes) -> None:
    make, _, keys, replace = CASES[case]
    feed(make(), frame, keys, replace)


@FUZZ
@given(case_names, json_values, st.sampled_from(["bare", "binance", "bitstamp"]))
def test_arbitrary_json(case: str, value: Any, wrap: str) -> None:
    make, template, keys, replace = CASES[case]
    if wrap == "binance":
        value = {"stream": template.get("stream", "x"), "data": value}
    elif wrap == "bitstamp":
        value = {"event": "data", "channel": template.get("channel", "x"), "data": value}
    feed(make(), msgspec.json.encode(value), keys, replace)


@FUZZ
@given(st.data(), case_names)
def test_mutated_real_frames(data: st.DataObject, case: str) -> None:
    make, template, keys, replace = CASES[case]
    protocol = make()
    value = data.draw(mutated(template) | level_mutated(template, keys))
    feed(protocol, json.dumps(value), keys, replace)
