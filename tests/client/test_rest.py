"""RestClient over httpx.MockTransport: retries, rate limits and timeouts on the autojump clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import trio
import trio.testing

from dragonflybot.client import HttpStatusError, RestClient
from dragonflybot.client.rest import parse_retry_after
from dragonflybot.errors import DecodeError, TransportError

URL = "https://api.venue.test/api/v3/depth"
Handler = Callable[[httpx.Request], httpx.Response]


def scripted(responses: list[httpx.Response], calls: list[tuple[float, httpx.Request]]) -> Handler:
    """Answer with ``responses`` in order, recording when each request arrived."""
    pending: Iterator[httpx.Response] = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((trio.current_time(), request))
        return next(pending)

    return handler


def client(handler: Handler, **kwargs: object) -> RestClient:
    return RestClient(transport=httpx.MockTransport(handler), rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


async def test_ok_returns_body_and_sends_params() -> None:
    calls: list[tuple[float, httpx.Request]] = []
    body = b'{"lastUpdateId":1027024,"bids":[["4.0","431.0"]],"asks":[]}'
    async with client(scripted([httpx.Response(200, content=body)], calls)) as rest:
        assert await rest.get_bytes(URL, params={"symbol": "ETHBTC", "limit": "1000"}) == body
    [(_, request)] = calls
    assert request.url.params["symbol"] == "ETHBTC"
    assert request.url.params["limit"] == "1000"


async def test_429_waits_retry_after_then_retries(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(200, content=b"ok"),
    ]
    start = trio.current_time()
    async with client(scripted(responses, calls)) as rest:
        assert await rest.get_bytes(URL) == b"ok"
    assert len(calls) == 2
    assert calls[1][0] - start >= 7.0


async def test_418_ban_honours_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [
        httpx.Response(418, headers={"Retry-After": "30"}),
        httpx.Response(200, content=b"ok"),
    ]
    async with client(scripted(responses, calls)) as rest:
        assert await rest.get_bytes(URL) == b"ok"
    assert calls[1][0] - calls[0][0] >= 30.0


async def test_retry_after_beyond_the_cap_is_handed_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(418, headers={"Retry-After": "600"})]
    async with client(scripted(responses, calls), max_retry_after=60.0) as rest:
        with pytest.raises(HttpStatusError) as caught:
            await rest.get_bytes(URL)
    assert caught.value.status_code == 418
    assert caught.value.retry_after == 600.0
    assert len(calls) == 1


async def test_rate_limit_without_retry_after_still_sleeps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(429), httpx.Response(429), httpx.Response(200, content=b"ok")]
    async with client(scripted(responses, calls), min_retry_delay=0.5) as rest:
        assert await rest.get_bytes(URL) == b"ok"
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(calls)]
    assert len(gaps) == 2
    assert all(gap >= 0.5 for gap in gaps)


async def test_server_error_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(502), httpx.Response(500), httpx.Response(200, content=b"ok")]
    async with client(scripted(responses, calls)) as rest:
        assert await rest.get_bytes(URL) == b"ok"
    assert len(calls) == 3


async def test_retries_exhausted_raise_last_error_without_tight_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(503, content=b"maintenance")] * 10
    start = trio.current_time()
    async with client(scripted(responses, calls), max_retries=3, min_retry_delay=0.5) as rest:
        with pytest.raises(HttpStatusError, match="503: maintenance") as caught:
            await rest.get_bytes(URL)
    assert caught.value.status_code == 503
    assert any("4 attempt" in note for note in caught.value.__notes__)
    assert len(calls) == 4
    assert trio.current_time() - start >= 3 * 0.5


async def test_client_error_is_not_retried() -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(400, content=b'{"code":-1121,"msg":"Invalid symbol."}')]
    async with client(scripted(responses, calls)) as rest:
        with pytest.raises(HttpStatusError, match="Invalid symbol") as caught:
            await rest.get_bytes(URL)
    assert caught.value.status_code == 400
    assert not caught.value.retryable
    assert len(calls) == 1


async def test_timeout_is_transport_error_after_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    async def never_answers(request: httpx.Request) -> httpx.Response:
        attempts.append(trio.current_time())
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    rest = RestClient(transport=httpx.MockTransport(never_answers), timeout=5.0, max_retries=2)
    async with rest:
        with pytest.raises(TransportError, match="no answer within 5 s"):
            await rest.get_bytes(URL)
    assert len(attempts) == 3


async def test_network_error_is_transport_error(autojump_clock: trio.testing.MockClock) -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with RestClient(transport=httpx.MockTransport(refuse), max_retries=1) as rest:
        with pytest.raises(TransportError, match="ConnectError") as caught:
            await rest.get_bytes(URL)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(attempts) == 2


async def test_oversized_body_is_refused() -> None:
    calls: list[tuple[float, httpx.Request]] = []
    responses = [httpx.Response(200, content=b"x" * 5000)]
    async with client(scripted(responses, calls), max_body_size=4096) as rest:
        with pytest.raises(DecodeError, match="4096"):
            await rest.get_bytes(URL)
    assert len(calls) == 1


async def test_use_outside_async_with_is_an_error() -> None:
    rest = RestClient(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    with pytest.raises(RuntimeError):
        await rest.get_bytes(URL)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("1e999", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected
