"""wss:// against a local TLS server whose certificate comes from a throwaway CA (trustme)."""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable

import pytest
import trio_websocket
import trustme

from dragonflybot.client import Backend, connect_websocket
from dragonflybot.errors import TransportError

StartServer = Callable[..., Awaitable[str]]


async def greet(connection: trio_websocket.WebSocketConnection) -> None:
    await connection.send_message("over tls")
    try:
        while True:
            await connection.get_message()
    except trio_websocket.ConnectionClosed:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, identity: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(identity).configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_unknown_ca_is_refused_by_default(
    backend: Backend, ws_server: StartServer, ca: trustme.CA
) -> None:
    url = await ws_server(greet, ssl_context=server_context(ca, "127.0.0.1"))
    assert url.startswith("wss://")
    # trio-websocket only notices a failed TLS handshake when the connect timeout expires.
    with pytest.raises(TransportError, match=re.escape("127.0.0.1")) as caught:
        async with connect_websocket(url, backend=backend, connect_timeout=1.0):
            pytest.fail("trusted a certificate from an unknown CA")
    if backend == "wsproto":
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


async def test_given_context_trusts_the_ca(
    backend: Backend, ws_server: StartServer, ca: trustme.CA
) -> None:
    url = await ws_server(greet, ssl_context=server_context(ca, "127.0.0.1"))
    async with connect_websocket(url, backend=backend, ssl_context=trusting(ca)) as stream:
        assert await stream.receive() == "over tls"


async def test_certificate_for_another_host_is_refused(
    backend: Backend, ws_server: StartServer, ca: trustme.CA
) -> None:
    url = await ws_server(greet, ssl_context=server_context(ca, "venue.example"))
    with pytest.raises(TransportError, match=re.escape("127.0.0.1")):
        async with connect_websocket(
            url, backend=backend, ssl_context=trusting(ca), connect_timeout=1.0
        ):
            pytest.fail("accepted a certificate issued for another host")
