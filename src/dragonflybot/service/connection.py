"""One client connection: purerpc's HTTP/2 + gRPC framing, our own dispatch.

purerpc 0.8.0's ``ConnectionHandler`` is replaced, not wrapped, because its
control flow is the problem: it catches everything with bare ``except:``
(swallowing cancellation, so a shutdown logs "Got exception in main dispatch
loop" and streams end without a status), and it sends a server stream's messages
back to back without waiting for the client. This module keeps purerpc's
framing (``GRPCProtoSocket``, its streams and status trailers) and does the
dispatch itself:

* every stream runs in its own cancel scope; shutting down cancels the scopes,
  then ends each stream with ``UNAVAILABLE`` trailers, sends GOAWAY, waits
  (briefly) for the bytes to leave and closes the socket;
* a server stream takes its next message only when the previous one has left
  the process (``PacedStream.wait_drained``), which is also a checkpoint
  between messages, so no stream can starve the others;
* a client that vanishes (EOF, reset, failed write) ends the connection and
  cancels its streams at once, freeing their fan-out slots.

Unary-unary, unary-stream and stream-stream (bidi: server reflection) methods
are served; client-streaming-only methods are not, as no service here defines one.
A bidi method reads its requests as they arrive (no request deadline: the client
may speak at any time) while its responses are paced like a server stream's.

purerpc internals used (pinned to 0.8.0 in pyproject): ``GRPCSocket._grpc_connection``
(the h2 state machine: ``h2_connection._data_to_send`` for bytes not yet
written, ``close_connection``/``reset_stream``) and ``GRPCSocket._socket.flush``
(wakes its writer task).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from contextlib import aclosing, suppress
from typing import Any

import anyio.abc
import h2.errors
import h2.exceptions
import trio
from google.protobuf import message as protobuf_message
from purerpc import Cardinality, RpcFailedError, Status, StatusCode
from purerpc.grpc_proto import GRPCProtoSocket, GRPCProtoStream
from purerpc.grpclib.config import GRPCConfiguration
from purerpc.grpclib.events import RequestReceived
from purerpc.grpclib.exceptions import GRPCError
from purerpc.wrappers import extract_message_from_singleton_stream, stream_to_async_iterator

from dragonflybot.service.pacing import PacedStream, tune_socket

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"""Seconds a client gets to send its (single) request message after the headers."""

SHUTDOWN_STATUS = Status(StatusCode.UNAVAILABLE, "server is shutting down")
MALFORMED_STATUS = Status(StatusCode.INVALID_ARGUMENT, "malformed request message")

Methods = Mapping[tuple[str, str], Any]
"""``(service name, method name) -> purerpc BoundRPCMethod``."""


class _StreamTask:
    __slots__ = ("mid_message", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.mid_message = False


class Connection:
    """Serves the streams of one accepted socket until it closes or the server shuts down."""

    def __init__(self, methods: Methods, socket_stream: anyio.abc.SocketStream) -> None:
        self._methods = methods
        self._raw = socket_stream
        self._paced = PacedStream(socket_stream, lambda: self.buffered_bytes)
        self._streams: set[_StreamTask] = set()
        self._idle = trio.Event()
        self._idle.set()
        self._listen_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._grpc_socket: Any = None
        self._closing = False
        self.peer = _peer_name(socket_stream)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def buffered_bytes(self) -> int:
        """Bytes written by streams but not yet handed to the socket (pacing keeps it small)."""
        if self._grpc_socket is None:
            return 0
        return len(self._grpc_socket._grpc_connection.h2_connection._data_to_send)

    async def serve(self) -> None:
        """Run until the peer goes away or ``shutdown`` has finished; always closes the socket."""
        tune_socket(self._raw)
        try:
            async with self._raw:
                await self._serve_grpc()
        except* (GRPCError, h2.exceptions.H2Error, anyio.BrokenResourceError) as group:
            log.info("connection %s dropped: %s", self.peer, _first_message(group))
        log.debug("connection %s closed", self.peer)

    async def _serve_grpc(self) -> None:
        config = GRPCConfiguration(client_side=False)
        async with GRPCProtoSocket(config, self._paced) as grpc_socket:
            self._grpc_socket = grpc_socket
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    if self._closing:
                        nursery.start_soon(self._close_gracefully)
                    with self._listen_scope:
                        async for stream in grpc_socket.listen():
                            if self._closing:
                                self._refuse(stream)
                            else:
                                nursery.start_soon(self._run_stream, stream)
                finally:
                    # The peer is gone, or GOAWAY went out: nothing left to serve.
                    self._nursery = None
                    nursery.cancel_scope.cancel()

    def shutdown(self) -> None:
        """Begin a graceful close: streams end with UNAVAILABLE, then GOAWAY and close."""
        if self._closing:
            return
        self._closing = True
        if self._nursery is not None:
            self._nursery.start_soon(self._close_gracefully)

    async def _close_gracefully(self) -> None:
        for task in list(self._streams):
            task.scope.cancel()
        await self._idle.wait()
        connection = self._grpc_socket._grpc_connection
        with suppress(h2.exceptions.H2Error):
            connection.h2_connection.close_connection()
        await self._flush()
        await self._paced.wait_drained()
        self._listen_scope.cancel()

    def _refuse(self, stream: GRPCProtoStream) -> None:
        """A stream opened after shutdown began: reset it so the client may retry elsewhere."""
        with suppress(h2.exceptions.H2Error):
            self._grpc_socket._grpc_connection.reset_stream(
                stream.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM
            )

    async def _flush(self) -> None:
        await self._grpc_socket._socket.flush()

    async def _run_stream(self, stream: GRPCProtoStream) -> None:
        task = _StreamTask()
        self._streams.add(task)
        self._idle = trio.Event()
        try:
            with task.scope:
                await self._dispatch(stream, task)
            if task.scope.cancelled_caught:
                await self._end(stream, task, SHUTDOWN_STATUS)
        except (GRPCError, h2.exceptions.H2Error) as exc:
            # The client reset the stream or broke the protocol: nothing to answer.
            log.debug("stream %s/%d ended: %r", self.peer, stream.stream_id, exc)
        finally:
            self._streams.discard(task)
            if not self._streams:
                self._idle.set()

    async def _dispatch(self, stream: GRPCProtoStream, task: _StreamTask) -> None:
        await stream.start_response()
        event = await stream.receive_event()
        if not isinstance(event, RequestReceived):
            await self._end(stream, task, Status(StatusCode.INTERNAL, "expected headers"))
            return
        bound = self._methods.get((event.service_name, event.method_name))
        if bound is None:
            name = f"{event.service_name}/{event.method_name}"
            await self._end(stream, task, Status(StatusCode.UNIMPLEMENTED, f"{name} is not served"))
            return
        cardinality = bound.signature.cardinality
        if cardinality == Cardinality.STREAM_UNARY:
            await self._end(stream, task, Status(StatusCode.UNIMPLEMENTED, "streaming requests"))
            return
        stream.expect_message_type(bound.signature.request_type)
        request: Any = None
        if cardinality == Cardinality.STREAM_STREAM:
            request = stream_to_async_iterator(stream)
        else:
            try:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    request = await extract_message_from_singleton_stream(stream)
            except protobuf_message.DecodeError:
                # Untrusted bytes: a malformed request ends its stream, never the server.
                await self._end(stream, task, MALFORMED_STATUS)
                return
        if request is None:
            status = Status(StatusCode.DEADLINE_EXCEEDED, "no request message received")
            await self._end(stream, task, status)
            return
        method = functools.partial(bound.method_fn, request=event)
        try:
            if cardinality == Cardinality.UNARY_UNARY:
                await self._send(stream, task, await method(request))
            else:
                async with aclosing(method(request)) as messages:
                    async for message in messages:
                        await self._send(stream, task, message)
        except RpcFailedError as exc:
            await self._end(stream, task, exc.status)
            return
        except protobuf_message.DecodeError:  # a malformed request of a bidi stream
            await self._end(stream, task, MALFORMED_STATUS)
            return
        except (GRPCError, h2.exceptions.H2Error):
            raise
        except Exception:
            log.exception("%s/%s failed", event.service_name, event.method_name)
            await self._end(stream, task, Status(StatusCode.INTERNAL, "internal error"))
            return
        await self._end(stream, task, Status(StatusCode.OK))

    async def _send(self, stream: GRPCProtoStream, task: _StreamTask, message: Any) -> None:
        task.mid_message = True
        await stream.send_message(message)
        task.mid_message = False
        await self._paced.wait_drained()

    async def _end(self, stream: GRPCProtoStream, task: _StreamTask, status: Any) -> None:
        """Trailers with ``status``; a reset instead if a message was cut in half."""
        if task.mid_message:
            self._grpc_socket._grpc_connection.reset_stream(
                stream.stream_id, h2.errors.ErrorCodes.CANCEL
            )
            await self._flush()
            return
        await stream.close(status)


def _peer_name(stream: anyio.abc.SocketStream) -> str:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "?"
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address)


def _first_message(group: BaseExceptionGroup[Any]) -> str:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_message(exc)
        return f"{type(exc).__name__}: {exc}"
    return repr(group)
