"""The REST server on h11: keep-alive, pipelining, HEAD, bad requests, idle clients."""

from __future__ import annotations

import re

import h11
import pytest
import trio
import trio.testing

from dragonflybot.errors import ConfigError
from dragonflybot.sim.http import HttpResponse, serve_http

from .conftest import running


def handler(method: str, target: str) -> HttpResponse:
    if target.startswith("/boom"):
        raise RuntimeError("handler bug")
    return HttpResponse.json(200, {"method": method, "target": target})


async def exchange(port: int, raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Send raw requests, read until the server closes; (status, headers, body) of each
    response, parsed by an h11 client fed the server's bytes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        await stream.send_all(raw)
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    responses = []
    for method in re.findall(rb"^([A-Z]+) ", raw, flags=re.M) or [b"GET"]:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            else:
                break
        responses.append((status, headers, body))
        data = data[len(data) - len(conn.trailing_data[0]) :] if conn.trailing_data[0] else b""
        if not data:
            break
    return responses


async def test_pipelined_keep_alive_requests_and_head() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
        responses = await exchange(
            port,
            b"GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"HEAD /b HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /boom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        nursery.cancel_scope.cancel()
    assert [status for status, _, _ in responses] == [200, 200, 500]
    assert responses[0][2] == b'{"method":"GET","target":"/a?x=1"}'
    assert responses[1][2] == b""  # HEAD: headers only
    assert responses[1][1][b"content-length"] == b"%d" % len(b'{"method":"HEAD","target":"/b"}')


async def test_malformed_request_gets_400() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
        responses = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        nursery.cancel_scope.cancel()
    assert [status for status, _, _ in responses] == [400]


async def test_idle_client_is_disconnected(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        start = trio.current_time()
        with trio.fail_after(120):
            assert await stream.receive_some(10) == b""
        assert trio.current_time() - start >= 30.0
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_port_in_use_is_named_in_the_error() -> None:
    """The simulator's own bind error says which venue, which listener and which address."""
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        expected = rf"binance REST: cannot listen on 127\.0\.0\.1:{port}"
        matcher = pytest.RaisesExc(ConfigError, match=expected)
        with pytest.RaisesGroup(matcher, flatten_subgroups=True):
            async with running(venues=("binance",), rest_ports={"binance": port}):
                pass
