"""Client-streaming dispatch (stream-unary and stream-stream) as grpcio uses it.

No service of the project takes a stream of requests but reflection (bidirectional),
so a small purerpc service defined here covers the rest: a stream-unary method that
joins what it was sent, a bidi echo, and the limits that apply to each message of a
stream (the size cap, a handler's error status). ``grpc-timeout`` on a silent bidi
stream: tests/hostile/test_bidi.py (a raw client, so the server's deadline is seen,
not grpcio's own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import trio
from purerpc import Cardinality, RPCSignature, Service

from dragonflybot.config import LimitsConfig
from dragonflybot.service import GrpcServer
from dragonflybot.service.messages import HealthCheckRequest as Text
from dragonflybot.service.purerpc_adapter import RpcFailedError, Status, StatusCode

JOIN = "/test.Text/Join"
ECHO = "/test.Text/Echo"


class TextServicer:
    """``Join``: stream-unary; ``Echo``: bidi, failing on the word ``fail``."""

    def __init__(self) -> None:
        self.service = Service("test.Text")
        self.service.add_method(
            "Join", self.join, RPCSignature(Cardinality.STREAM_UNARY, Text, Text)
        )
        self.service.add_method(
            "Echo", self.echo, RPCSignature(Cardinality.STREAM_STREAM, Text, Text)
        )

    async def join(self, messages: AsyncIterator[Any]) -> Any:
        words = [message.service async for message in messages]
        return Text(service=" ".join(words))

    async def echo(self, messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for message in messages:
            if message.service == "fail":
                raise RpcFailedError(Status(StatusCode.FAILED_PRECONDITION, "asked to fail"))
            yield Text(service=message.service.upper())


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = GrpcServer(
        [TextServicer()], "127.0.0.1", 0, limits=LimitsConfig(max_receive_message=64)
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield f"127.0.0.1:{port}"
        server.shutdown()
        with trio.move_on_after(5):
            await server.wait_closed()
        nursery.cancel_scope.cancel()


def _words(*words: str) -> Iterator[Any]:
    return iter([Text(service=w) for w in words])


def _call(target: str, kind: str, path: str, requests: Any, timeout: float = 10) -> Any:
    with grpc.insecure_channel(target) as channel:
        method = getattr(channel, kind)(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=Text.FromString,
        )
        try:
            result = method(requests, timeout=timeout)
            if kind == "stream_stream":
                return [m.service for m in result]
            return result.service
        except grpc.RpcError as exc:
            return exc.code(), exc.details()


async def test_stream_unary_joins_every_request(target: str) -> None:
    joined = await trio.to_thread.run_sync(
        _call, target, "stream_unary", JOIN, _words("a", "b", "c")
    )
    assert joined == "a b c"
    empty = await trio.to_thread.run_sync(_call, target, "stream_unary", JOIN, _words())
    assert empty == ""


async def test_bidi_echoes_in_order_and_ends_with_the_handlers_status(target: str) -> None:
    echoed = await trio.to_thread.run_sync(_call, target, "stream_stream", ECHO, _words("x", "y"))
    assert echoed == ["X", "Y"]
    failed = await trio.to_thread.run_sync(
        _call, target, "stream_stream", ECHO, _words("x", "fail", "z")
    )
    assert failed == (grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")


async def test_each_streamed_message_is_capped(target: str) -> None:
    code, details = await trio.to_thread.run_sync(
        _call, target, "stream_unary", JOIN, _words("short", "x" * 100)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the limit of 64" in details
