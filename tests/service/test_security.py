"""TLS, client certificates and bearer tokens, as grpcio and the project's client see them.

Certificates come from ``trustme`` (a throwaway CA per test run); the server is a
real ``GrpcServer`` on an ephemeral port, the clients are grpcio (an implementation
we did not write) in worker threads, and purerpc through ``follow_book``.
"""

from __future__ import annotations

import io
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
import trio
import trustme
from fix.test_app_fix import ScriptedFeeds
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.aggregator import Aggregator
from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.app import App, run_app
from dragonflybot.config import (
    AppConfig,
    AuthConfig,
    InstrumentConfig,
    LimitsConfig,
    TlsConfig,
    VenueConfig,
)
from dragonflybot.core.view import VenueUpdate
from dragonflybot.errors import ConfigError, ServiceError, TransportError
from dragonflybot.logging_setup import configure_logging
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher
from dragonflybot.service.book_client import ReceivedSummary, follow_book
from dragonflybot.service.channel import ChannelSecurity
from dragonflybot.service.messages import HealthCheckRequest, HealthCheckResponse, Summary
from dragonflybot.service.proto import reflection_v1_pb2
from dragonflybot.service.reflection import reflection_servicers
from dragonflybot.service.security import (
    TokenCheck,
    client_tls_context,
    load_token,
    server_tls_context,
)

from .conftest import BOOK_SUMMARY, view, wait_for

TOKEN = "s3cret-token-0123456789abcdef"
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
HEALTH = "/grpc.health.v1.Health/Check"


@attrs.frozen
class Pki:
    ca: trustme.CA
    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str
    client_key_file: str
    token_file: str
    other_ca_file: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    tmp = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    server.private_key_pem.write_to_path(str(tmp / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(tmp / "server.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(tmp / "server.pem"), append=True)
    client.private_key_pem.write_to_path(str(tmp / "client.key"))
    client.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    trustme.CA().cert_pem.write_to_path(str(tmp / "other-ca.pem"))
    (tmp / "token").write_text(TOKEN + "\n")
    yield Pki(
        ca,
        str(tmp / "ca.pem"),
        str(tmp / "server.pem"),
        str(tmp / "server.key"),
        str(tmp / "client.pem"),
        str(tmp / "client.key"),
        str(tmp / "token"),
        str(tmp / "other-ca.pem"),
    )


@asynccontextmanager
async def secured(
    tls: ssl.SSLContext | None = None, auth: TokenCheck | None = None
) -> AsyncIterator[GrpcServer]:
    """BookSummary, Health and reflection behind ``tls``/``auth``, with a book published."""
    publisher = SummaryPublisher()
    send, receive = trio.open_memory_channel[VenueUpdate](100)
    served = [BookSummaryService(publisher.books), HealthService(publisher.serving)]
    server = GrpcServer(
        [*served, *reflection_servicers(served)], "127.0.0.1", 0, tls=tls, auth=auth
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(Aggregator(5, publisher).run, receive)
        await nursery.start(server.serve)
        await send.send(view("binance", "1", "2"))
        yield server
        server.shutdown()
        with trio.move_on_after(5):
            await server.wait_closed()
        nursery.cancel_scope.cancel()


def _channel(target: str, pki: Pki | None, *, client_cert: bool = False, ca: str = "") -> Any:
    if pki is None:
        return grpc.insecure_channel(target)
    root = Path(ca or pki.ca_file).read_bytes()
    if client_cert:
        credentials = grpc.ssl_channel_credentials(
            root,
            Path(pki.client_key_file).read_bytes(),
            Path(pki.client_cert_file).read_bytes(),
        )
    else:
        credentials = grpc.ssl_channel_credentials(root)
    return grpc.secure_channel(target, credentials)


def _book(channel: Any, metadata: Any = None) -> Any:
    method = channel.unary_stream(
        BOOK_SUMMARY, request_serializer=lambda _: b"", response_deserializer=Summary.FromString
    )
    call = method(b"", timeout=10, metadata=metadata)
    first = next(call)
    call.cancel()
    return first


def _health(channel: Any) -> int:
    check = channel.unary_unary(
        HEALTH,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=HealthCheckResponse.FromString,
    )
    status: int = check(HealthCheckRequest(), timeout=10).status
    return status


def _reflect(channel: Any, metadata: Any = None) -> list[Any]:
    method = channel.stream_stream(
        REFLECTION,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=reflection_v1_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_v1_pb2.ServerReflectionRequest(list_services="")
    return list(method(iter([request]), timeout=10, metadata=metadata))


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    raise AssertionError("the call succeeded")


def target(server: GrpcServer) -> str:
    return f"localhost:{server.port}"


# --- TLS -----------------------------------------------------------------------------


async def test_grpcio_over_tls_is_served_and_plaintext_is_refused(pki: Pki) -> None:
    context = server_tls_context(TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file))
    async with secured(tls=context) as server:

        def calls() -> tuple[Any, grpc.StatusCode, grpc.StatusCode]:
            with _channel(target(server), pki) as channel:
                summary = _book(channel)
            with _channel(target(server), None) as channel:
                plain = _code(lambda: _book(channel))
            with _channel(target(server), pki, ca=pki.other_ca_file) as channel:
                untrusted = _code(lambda: _book(channel))
            return summary, plain, untrusted

        summary, plain, untrusted = await trio.to_thread.run_sync(calls)
        assert summary.bids[0].price == 1.0
        assert plain == grpc.StatusCode.UNAVAILABLE
        assert untrusted == grpc.StatusCode.UNAVAILABLE
        # The server counts a failed handshake when it sees it fail, which may be after
        # the client has given up: wait for the count, do not race it.
        await wait_for(lambda: server.stats.tls_failures >= 2)


async def test_client_certificates_are_required_and_verified(pki: Pki) -> None:
    config = TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file, client_ca_file=pki.ca_file)
    async with secured(tls=server_tls_context(config)) as server:

        def calls() -> tuple[Any, grpc.StatusCode]:
            with _channel(target(server), pki, client_cert=True) as channel:
                summary = _book(channel)
            with _channel(target(server), pki) as channel:
                without = _code(lambda: _book(channel))
            return summary, without

        summary, without = await trio.to_thread.run_sync(calls)
        assert summary.bids[0].price == 1.0
        assert without == grpc.StatusCode.UNAVAILABLE
        await wait_for(lambda: server.stats.tls_failures >= 1)


async def test_a_client_that_never_starts_tls_is_closed_after_the_handshake_timeout(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    context = server_tls_context(TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file))
    async with secured(tls=context) as server:
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", server.port))
        with trio.fail_after(60):
            assert await sock.recv(100) == b""  # closed, after handshake_timeout (5 s)
        sock.close()
        assert server.stats.connections_timed_out == 1


def test_bad_tls_files_are_config_errors_naming_the_key(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls.cert_file: .*nope.pem: no such file"):
        server_tls_context(TlsConfig(cert_file=str(tmp_path / "nope.pem"), key_file=pki.key_file))
    with pytest.raises(ConfigError, match=r"tls\.cert_file/key_file: cannot load"):
        server_tls_context(TlsConfig(cert_file=pki.token_file, key_file=pki.key_file))
    with pytest.raises(ConfigError, match=r"tls\.client_ca_file"):
        server_tls_context(
            TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file, client_ca_file=pki.key_file)
        )
    with pytest.raises(ConfigError, match="--tls-ca"):
        client_tls_context(str(tmp_path / "missing.pem"))


# --- tokens --------------------------------------------------------------------------


def test_token_check_answers() -> None:
    check = TokenCheck(TOKEN.encode())
    service = "orderbook.OrderbookAggregator"
    right = [(b"authorization", b"Bearer " + TOKEN.encode())]
    assert check.check(service, right) is None
    assert check.check(service, [(b"authorization", b"bearer " + TOKEN.encode())]) is None
    missing = check.check(service, [])
    wrong = check.check(service, [(b"authorization", b"Bearer " + TOKEN.encode()[:-1] + b"x")])
    basic = check.check(service, [(b"authorization", b"Basic " + TOKEN.encode())])
    assert missing is not None and missing.message == "missing bearer token"
    assert wrong is not None and wrong.message == "invalid bearer token"
    assert basic is not None and "Bearer" in basic.message
    for refusal in (missing, wrong, basic):
        assert refusal.code.name == "UNAUTHENTICATED"
        assert TOKEN not in refusal.message
    assert check.check("grpc.health.v1.Health", []) is None


@given(
    value=st.binary(max_size=80),
    name=st.sampled_from([b"authorization", b"Authorization", b"x-token"]),
)
def test_only_the_exact_token_is_accepted(value: bytes, name: bytes) -> None:
    """Any header value is answered (never an exception), and only ``Bearer <token>``
    (scheme case-insensitive, whitespace around the token ignored) passes."""
    check = TokenCheck(TOKEN.encode())
    verdict = check.check("orderbook.OrderbookAggregator", [(name, value)])
    exact = (
        name == b"authorization"
        and value[:7].lower() == b"bearer "
        and (value[7:].strip() == TOKEN.encode())
    )
    assert (verdict is None) == exact
    if verdict is not None:
        assert verdict.code.name == "UNAUTHENTICATED"


@given(token=st.from_regex(r"\A[A-Za-z0-9._~+/=-]{16,64}\Z"))
def test_the_right_token_always_passes(token: str) -> None:
    check = TokenCheck(token.encode())
    header = [(b"authorization", b"Bearer " + token.encode())]
    assert check.check("any.Service", header) is None
    assert check.check("any.Service", [(b"authorization", b"Bearer " + token.encode() + b"x")])


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "16 to 4096 characters"),
        (b"short", "16 to 4096 characters"),
        (b"two words are not one token", "16 to 4096 characters"),
        ("caf\u00e9-token-0123456789".encode(), "ASCII"),
    ],
)
def test_bad_token_files_are_config_errors_without_the_content(
    tmp_path: Path, content: bytes, error: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=error) as info:
        load_token(str(path))
    if content:
        assert content.decode("utf-8") not in str(info.value)


def test_a_missing_token_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth.token_file: .*: no such file"):
        load_token(str(tmp_path / "none"))


async def test_grpcio_with_and_without_the_token(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # The service's own logging set-up at DEBUG: still no token (hpack would log it).
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("DEBUG", stream=io.StringIO())
    caplog.set_level(logging.DEBUG)
    auth = TokenCheck.from_config(AuthConfig(token_file=pki.token_file))
    async with secured(auth=auth) as server:
        good = [("authorization", f"Bearer {TOKEN}")]
        bad = [("authorization", "Bearer not-the-token-at-all-000")]

        def calls() -> dict[str, Any]:
            with _channel(f"127.0.0.1:{server.port}", None) as channel:
                return {
                    "good": _book(channel, good),
                    "none": _code(lambda: _book(channel)),
                    "bad": _code(lambda: _book(channel, bad)),
                    "health": _health(channel),
                    "reflection": _code(lambda: _reflect(channel)),
                    "reflection_good": _reflect(channel, good),
                }

        out = await trio.to_thread.run_sync(calls)
        assert out["good"].bids[0].price == 1.0
        assert out["none"] == grpc.StatusCode.UNAUTHENTICATED
        assert out["bad"] == grpc.StatusCode.UNAUTHENTICATED
        assert out["health"] == HealthCheckResponse.SERVING
        assert out["reflection"] == grpc.StatusCode.UNAUTHENTICATED
        (listed,) = out["reflection_good"]
        assert listed.HasField("list_services_response")
        assert server.stats.unauthenticated == 3
    root.removeHandler(handler)
    root.setLevel(level)
    assert "UNAUTHENTICATED" in caplog.text or "connection" in caplog.text  # it did log
    assert TOKEN not in caplog.text


async def test_the_purerpc_client_speaks_tls_with_a_token(pki: Pki) -> None:
    context = server_tls_context(
        TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file, client_ca_file=pki.ca_file)
    )
    auth = TokenCheck.from_config(AuthConfig(token_file=pki.token_file))
    client_context = client_tls_context(
        pki.ca_file, cert_file=pki.client_cert_file, key_file=pki.client_key_file
    )
    async with secured(tls=context, auth=auth) as server:
        books: Fanout[ReceivedSummary] = Fanout()
        good = ChannelSecurity(client_context, load_token(pki.token_file))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: follow_book("localhost", server.port, books, security=good))
            with trio.fail_after(10), books.subscribe() as subscription:
                received = await subscription.receive()
            assert received.summary.bids[0].price == 1.0
            nursery.cancel_scope.cancel()
        no_token = ChannelSecurity(client_context, None)
        # A refusal, not a lost connection: retrying with the same token cannot help.
        with pytest.raises(ServiceError, match="refused the stream: UNAUTHENTICATED"):
            await follow_book("localhost", server.port, books, security=no_token)
        plaintext = ChannelSecurity(None, load_token(pki.token_file))
        with pytest.raises(TransportError):
            await follow_book("localhost", server.port, books, security=plaintext)
        untrusted = ChannelSecurity(client_tls_context(pki.other_ca_file), None)
        with pytest.raises(TransportError, match="TLS failed"):
            await follow_book("localhost", server.port, books, security=untrusted)


async def test_shutdown_does_not_wait_for_a_tls_handshake(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    context = server_tls_context(TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file))
    publisher = SummaryPublisher()
    server = GrpcServer([HealthService(publisher.serving)], "127.0.0.1", 0, tls=context)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", port))
        await wait_connections(server, 1)
        start = trio.current_time()
        server.shutdown()
        await server.wait_closed()
        assert trio.current_time() - start < 1.0  # not the 5 s handshake timeout
        assert server.stats.connections_timed_out == 0
        sock.close()


async def wait_connections(server: GrpcServer, n: int) -> None:
    with trio.fail_after(5):
        while server.connection_count != n:  # noqa: ASYNC110 - a counter
            await trio.sleep(0.01)


async def test_over_the_connection_cap_a_tls_port_just_closes(pki: Pki) -> None:
    context = server_tls_context(TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file))
    publisher = SummaryPublisher()
    server = GrpcServer(
        [HealthService(publisher.serving)],
        "127.0.0.1",
        0,
        tls=context,
        limits=LimitsConfig(max_connections=1),
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        first = trio.socket.socket()
        await first.connect(("127.0.0.1", port))
        await wait_connections(server, 1)
        second = trio.socket.socket()
        await second.connect(("127.0.0.1", port))
        with trio.fail_after(5):
            # No plaintext GOAWAY bytes before a TLS handshake: only the close.
            assert await second.recv(100) == b""
        assert server.stats.connections_refused == 1
        first.close()
        second.close()
        server.shutdown()


# --- the app: every address it binds --------------------------------------------------


async def test_every_address_of_the_app_gets_the_limits_tls_and_token(pki: Pki) -> None:
    """The API address and an instrument's own address alike: the same ``[limits]``,
    TLS and token, each refusal counted under its address in the metrics."""
    config = AppConfig(
        listen="127.0.0.1:0",
        instruments=[
            InstrumentConfig(name="ETH-BTC"),
            InstrumentConfig(name="BTC-USDT", listen="127.0.0.1:0"),
        ],
        venues=[VenueConfig(name="binance"), VenueConfig(name="bitstamp")],
        limits=LimitsConfig(max_connections=7),
        tls=TlsConfig(cert_file=pki.cert_file, key_file=pki.key_file),
        auth=AuthConfig(token_file=pki.token_file),
        shutdown_grace=0.5,
    )
    async with trio.open_nursery() as nursery:
        app: App = await nursery.start(
            lambda task_status: run_app(
                config, feed_runner=ScriptedFeeds(), task_status=task_status
            )
        )
        assert len(app.servers) == 2
        assert {s.port for s in app.servers} == {
            app.instruments["ETH-BTC"].port,
            app.instruments["BTC-USDT"].port,
        }
        for server in app.servers:
            assert server.limits.max_connections == 7

        def calls(server: GrpcServer) -> tuple[grpc.StatusCode, list[Any]]:
            good = [("authorization", f"Bearer {TOKEN}")]
            with _channel(target(server), pki) as channel:
                return _code(lambda: _book(channel)), _reflect(channel, good)

        for server in app.servers:
            refused, (listed,) = await trio.to_thread.run_sync(calls, server)
            assert refused == grpc.StatusCode.UNAUTHENTICATED
            names = {s.name for s in listed.list_services_response.service}
            assert {"dragonflybot.v1.BookService", "orderbook.OrderbookAggregator"} <= names
            counted = app.registry.get_sample_value(
                "dragonflybot_grpc_unauthenticated_total", {"listen": server.address}
            )
            assert counted == 1
        app.shutdown()
