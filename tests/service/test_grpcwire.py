"""The sans-I/O gRPC request checks and message reader."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service.grpcwire import (
    MessageReader,
    Rejection,
    Request,
    WireError,
    check_request,
    frame_message,
    parse_timeout,
    status_trailers,
    valid_binary_header,
)
from dragonflybot.service.purerpc_adapter import StatusCode

GOOD = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/orderbook.OrderbookAggregator/BookSummary"),
    (b":authority", b"x"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]


def _replace(name: bytes, value: bytes | None) -> list[tuple[bytes, bytes]]:
    out = [(n, v) for n, v in GOOD if n != name]
    return out if value is None else [*out, (name, value)]


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
)
def test_messages_come_out_whole_however_the_bytes_are_split(
    payloads: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frame_message(p) for p in payloads)
    reader = MessageReader(300)
    out: list[bytes] = []
    for chunk in _splits(data, cuts):
        out.extend(reader.feed(chunk))
    assert out == payloads
    assert not reader.partial


@given(st.integers(min_value=301, max_value=2**32 - 1), st.integers(min_value=0, max_value=4))
def test_an_oversized_message_is_refused_on_its_prefix(length: int, cut: int) -> None:
    reader = MessageReader(300)
    prefix = b"\0" + length.to_bytes(4, "big")
    with pytest.raises(WireError) as info:
        list(reader.feed(prefix[:cut]))
        list(reader.feed(prefix[cut:]))
    assert info.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert reader.buffered <= 5


def test_a_compressed_or_bad_flag_is_internal() -> None:
    for flag in (1, 2, 255):
        with pytest.raises(WireError) as info:
            list(MessageReader(300).feed(bytes([flag]) + b"\0\0\0\0"))
        assert info.value.code == StatusCode.INTERNAL


def test_a_good_request_passes() -> None:
    checked = check_request([*GOOD, (b"grpc-timeout", b"250m"), (b"x-id-bin", b"AAEC")])
    assert isinstance(checked, Request)
    assert (checked.service, checked.method) == ("orderbook.OrderbookAggregator", "BookSummary")
    assert checked.timeout == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("name", "value", "code", "http"),
    [
        (b":method", b"GET", StatusCode.UNIMPLEMENTED, 405),
        (b":method", None, StatusCode.UNIMPLEMENTED, 405),
        (b"content-type", None, StatusCode.INVALID_ARGUMENT, 415),
        (b"content-type", b"application/grpc-web", StatusCode.INVALID_ARGUMENT, 415),
        (b"te", None, StatusCode.INVALID_ARGUMENT, 200),
        (b":path", b"/a/b/c", StatusCode.UNIMPLEMENTED, 200),
        (b":path", b"/abc", StatusCode.UNIMPLEMENTED, 200),
        (b":path", b"/\xff/\xfe", StatusCode.UNIMPLEMENTED, 200),
        (b":path", None, StatusCode.UNIMPLEMENTED, 200),
        (b"grpc-timeout", b"1x", StatusCode.INVALID_ARGUMENT, 200),
        (b"grpc-timeout", b"123456789S", StatusCode.INVALID_ARGUMENT, 200),
        (b"grpc-encoding", b"gzip", StatusCode.UNIMPLEMENTED, 200),
        (b"trace-bin", b"%%%", StatusCode.INVALID_ARGUMENT, 200),
    ],
)
def test_each_malformed_header_has_its_status(
    name: bytes, value: bytes | None, code: StatusCode, http: int
) -> None:
    checked = check_request(_replace(name, value))
    assert isinstance(checked, Rejection)
    assert (checked.code, checked.http_status) == (code, http)


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=20))
def test_check_request_never_raises(headers: list[tuple[bytes, bytes]]) -> None:
    assert isinstance(check_request(headers), Request | Rejection)


def test_timeouts_and_binary_headers() -> None:
    assert parse_timeout(b"2S") == 2.0
    assert parse_timeout(b"1H") == 3600.0
    assert parse_timeout(b"5n") == pytest.approx(5e-9)
    for bad in (b"", b"S", b"-1S", b"1.5S", b"1s"):
        with pytest.raises(ValueError):
            parse_timeout(bad)
    assert valid_binary_header(b"AAEC") and valid_binary_header(b"AAE")
    assert not valid_binary_header(b"A A")


def test_grpc_message_is_percent_encoded() -> None:
    trailers = dict(status_trailers(StatusCode.INVALID_ARGUMENT, "bad: 100%\n é"))
    assert trailers[b"grpc-status"] == b"3"
    assert trailers[b"grpc-message"] == b"bad: 100%25%0A %C3%A9"
