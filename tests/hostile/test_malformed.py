"""Issue 16 items 1 and 8: every malformed request gets a status on its own stream.

Each kind below ended the process (or the connection, with a bare close) under
purerpc's server. Now each gets a ``grpc-status`` (or an HTTP status gRPC clients
map, or a stream reset) and the connection, the process and the other client go on.
"""

from __future__ import annotations

import grpc
import pytest
import trio

from dragonflybot.service.messages import HealthCheckRequest, HealthCheckResponse

from .conftest import RSS_GROWTH_KB
from .helpers import (
    GRPC_HEADERS,
    HEALTH_CHECK,
    PREFACE,
    RawH2,
    ServerProcess,
    frame,
    read_goaway,
    watching,
)


def _with(**changes: bytes | None) -> list[tuple[bytes, bytes]]:
    """The well-formed request headers with some replaced (None: removed)."""
    names = {k.replace("_", "-").replace("colon-", ":").encode(): v for k, v in changes.items()}
    out = [(n, names.get(n, v)) for n, v in GRPC_HEADERS if names.get(n, v) is not None]
    extra = [(n, v) for n, v in names.items() if v is not None and n not in dict(GRPC_HEADERS)]
    return [(n, v) for n, v in out if v is not None] + extra  # type: ignore[misc]


HEALTH = _with(colon_path=HEALTH_CHECK.encode())

# (name, headers, body, expected grpc-status; None: metadata the server need not read, so
# being served normally is as right as a status)
KINDS: list[tuple[str, list[tuple[bytes, bytes]], bytes | None, int | None]] = [
    ("no content-type", _with(content_type=None), b"\0\0\0\0\0", 3),
    ("wrong content-type", _with(content_type=b"text/plain"), b"\0\0\0\0\0", 3),
    ("GET", _with(colon_method=b"GET"), None, 12),
    ("no te", _with(te=None), b"\0\0\0\0\0", 3),
    ("path /a/b/c", _with(colon_path=b"/a/b/c"), b"\0\0\0\0\0", 12),
    ("path /abc", _with(colon_path=b"/abc"), b"\0\0\0\0\0", 12),
    ("unknown method", _with(colon_path=b"/x.Y/Z"), b"\0\0\0\0\0", 12),
    ("non-UTF-8 path", _with(colon_path=b"/\xff\xfe/\xc3"), b"\0\0\0\0\0", 12),
    ("bad grpc-timeout", _with(grpc_timeout=b"soon"), b"\0\0\0\0\0", 3),
    ("bad -bin header", _with(x_trace_bin=b"!!not base64!!"), b"\0\0\0\0\0", 3),
    ("non-UTF-8 header", _with(x_note=b"\xff\xfe\xfd"), b"\0\0\0\0\0", None),
    ("gzip garbage", _with(grpc_encoding=b"gzip"), b"\x01\0\0\0\x04junk", 12),
    ("compressed, no encoding", list(GRPC_HEADERS), b"\x01\0\0\0\x04junk", 13),
    ("not protobuf", HEALTH, b"\0\0\0\0\x03\xff\xff\xff", 3),
    ("declared 30 MiB", list(GRPC_HEADERS), b"\0\x01\xe0\0\0" + b"x" * 1000, 8),
    ("two messages", list(GRPC_HEADERS), b"\0\0\0\0\0" * 2, 3),
    ("truncated message", list(GRPC_HEADERS), b"\0\0\0\0\x09abc", 3),
]


async def test_every_malformed_request_gets_a_status_on_its_own_stream(
    server: ServerProcess,
) -> None:
    rss = server.rss_kb()
    async with watching(server.target) as watcher:
        client = await RawH2.connect(server.port)
        sids = {name: client.request(headers, body) for name, headers, body, _ in KINDS}
        good = client.request()  # a well-formed stream on the same connection
        await client.flush()
        checked = [sids[name] for name, _, _, expected in KINDS if expected is not None]
        served = [sids[name] for name, _, _, expected in KINDS if expected is None] + [good]

        def settled() -> bool:
            answered = all(client.done(s) for s in checked)
            return answered and all(client.outcomes[s].data or client.done(s) for s in served)

        await client.pump(5, until=settled)
        for name, _, _, expected in KINDS:
            outcome = client.outcomes[sids[name]]
            if expected is not None:
                assert outcome.ended, name
                assert outcome.grpc_status == expected, (name, outcome)
            else:
                assert outcome.data or outcome.grpc_status is not None, name
        assert client.outcomes[good].data  # the good stream streams on, beside them
        assert client.goaway is None and not client.closed
        client.close()
        await watcher.wait_more()
    assert server.alive
    assert server.rss_kb() - rss < RSS_GROWTH_KB
    report = await server.stats()
    assert report["requests_rejected"] >= len(KINDS) - 2
    assert report["messages_too_large"] == 1


async def test_grpcio_with_wrong_bytes_gets_invalid_argument(server: ServerProcess) -> None:
    def call() -> grpc.StatusCode:
        with grpc.insecure_channel(server.target) as channel:
            check = channel.unary_unary(
                HEALTH_CHECK,
                request_serializer=lambda _: b"\xff\xff\xff",
                response_deserializer=HealthCheckResponse.FromString,
            )
            try:
                check(HealthCheckRequest(), timeout=5)
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
            return grpc.StatusCode.OK

    async with watching(server.target) as watcher:
        for _ in range(3):
            assert await trio.to_thread.run_sync(call) == grpc.StatusCode.INVALID_ARGUMENT
        await watcher.wait_more()
    assert server.alive


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("bad preface", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(40), 1),
        ("frame over 16 KiB", PREFACE + frame(0x4, 0, 0) + frame(0x0, 0, 1, bytes(20_000)), 6),
        ("DATA on stream 0", PREFACE + frame(0x4, 0, 0) + frame(0x0, 0, 0, b"x"), 1),
        ("even stream id", PREFACE + frame(0x4, 0, 0) + frame(0x1, 0x4, 2, b"\x82"), 1),
        ("bad HPACK", PREFACE + frame(0x4, 0, 0) + frame(0x1, 0x4, 1, b"\xff\xff\xff\xff"), 1),
    ],
)
async def test_a_protocol_error_gets_goaway_not_a_bare_close(
    server: ServerProcess, name: str, payload: bytes, code: int
) -> None:
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", server.port))
    await sock.send(payload)
    goaway, closed = await read_goaway(sock)
    sock.close()
    assert goaway == code, name
    assert closed
    assert server.alive
