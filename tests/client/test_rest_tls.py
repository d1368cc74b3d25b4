"""RestClient over real local sockets: TLS verified by default, no TLS set-up for http://."""

from __future__ import annotations

import contextlib
import functools
import ssl

import pytest
import trio
import trustme

from dragonflybot.client import RestClient
from dragonflybot.client.tls import default_ssl_context
from dragonflybot.errors import TransportError

BODY = b'{"lastUpdateId":1,"bids":[],"asks":[]}'


async def answer(stream: trio.abc.Stream) -> None:
    """A canned HTTP/1.1 reply once the request head is in (the client's request is GET)."""
    request = b""
    with trio.move_on_after(5):
        while b"\r\n\r\n" not in request:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            request += chunk
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
        await stream.send_all(head + BODY)
    await stream.aclose()


async def tolerant(stream: trio.abc.Stream) -> None:
    # A client that refused our certificate hangs up mid-handshake.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await answer(stream)


@pytest.fixture
async def base_url(nursery: trio.Nursery, request: pytest.FixtureRequest) -> tuple[str, trustme.CA]:
    """``(url, ca)`` of a local server speaking ``request.param`` (http or https)."""
    ca = trustme.CA()
    if request.param == "https":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        tls = functools.partial(trio.serve_ssl_over_tcp, tolerant, 0, context, host="127.0.0.1")
        listener = (await nursery.start(tls))[0].transport_listener
    else:
        tcp = functools.partial(trio.serve_tcp, tolerant, 0, host="127.0.0.1")
        listener = (await nursery.start(tcp))[0]
    port = listener.socket.getsockname()[1]
    return f"{request.param}://127.0.0.1:{port}/api/v3/depth", ca


def causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def counting_contexts(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    built: list[ssl.SSLContext] = []

    def spy() -> ssl.SSLContext:
        built.append(default_ssl_context())
        return built[-1]

    monkeypatch.setattr("dragonflybot.client.rest.default_ssl_context", spy)
    return built


@pytest.mark.parametrize("base_url", ["http"], indirect=True)
async def test_plain_http_builds_no_tls_context(
    base_url: tuple[str, trustme.CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = counting_contexts(monkeypatch)
    url, _ = base_url
    async with RestClient(max_retries=0) as rest:
        assert await rest.get_bytes(url) == BODY
        assert await rest.get_bytes(url) == BODY
    assert built == []


@pytest.mark.parametrize("base_url", ["https"], indirect=True)
async def test_https_is_verified_by_default_with_one_context(
    base_url: tuple[str, trustme.CA], monkeypatch: pytest.MonkeyPatch
) -> None:
    built = counting_contexts(monkeypatch)
    url, _ = base_url
    async with RestClient(max_retries=0, timeout=5.0) as rest:
        for _ in range(2):
            with pytest.raises(TransportError) as caught:
                await rest.get_bytes(url)
            assert any(isinstance(e, ssl.SSLCertVerificationError) for e in causes(caught.value))
    assert len(built) == 1  # built on the first https request, then reused


@pytest.mark.parametrize("base_url", ["https"], indirect=True)
async def test_https_with_a_trusting_context_gets_the_body(
    base_url: tuple[str, trustme.CA],
) -> None:
    url, ca = base_url
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with RestClient(max_retries=0, timeout=5.0, verify=context) as rest:
        assert await rest.get_bytes(url) == BODY
