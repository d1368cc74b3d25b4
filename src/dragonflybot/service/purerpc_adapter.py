"""The one module that knows purerpc 0.8.0 beyond its public names.

purerpc stays for what it does well: the generated servicer and stub classes
(``service/proto/*_grpc.py``), ``Status``/``StatusCode``/``RpcFailedError``, and the
client side (``channel``, ``book_client``). The server no longer runs on its
HTTP/2 code (``service.connection`` speaks HTTP/2 itself, see there for why), so
what remains of its internals is small and lives here, pinned to 0.8.0 in
pyproject: the method table of a servicer (``Service.methods``, a dict of
``BoundRPCMethod``) and the client socket's reader task and stream queues
(``GRPCProtoSocket._reader_thread``, ``_streams``, ``_incoming_events``).
Every other module imports purerpc names from here, so an upgrade is checked in
one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
from purerpc import Cardinality, RpcFailedError, Status, StatusCode
from purerpc.grpc_proto import GRPCProtoSocket
from purerpc.grpclib.config import GRPCConfiguration
from purerpc.grpclib.exceptions import GRPCError

__all__ = [
    "Cardinality",
    "ClientSocket",
    "GRPCConfiguration",
    "GRPCError",
    "MethodEntry",
    "Methods",
    "RpcFailedError",
    "Status",
    "StatusCode",
    "method_table",
]

SERVED_CARDINALITIES: Final = frozenset(
    {
        Cardinality.UNARY_UNARY,
        Cardinality.UNARY_STREAM,
        Cardinality.STREAM_UNARY,
        Cardinality.STREAM_STREAM,
    }
)
"""What the server dispatches: all four kinds (reflection is bidirectional)."""


@attrs.frozen(slots=True)
class MethodEntry:
    """One servable method: the servicer's coroutine or generator and its message types."""

    handler: Any
    """``handler(request, request=<headers>)``: purerpc's bound method (it adapts servicers
    that take only the message)."""
    request_type: Any
    """The protobuf class of the request (``FromString`` decodes it)."""
    streaming: bool
    """True when the method answers with a stream (an async generator), False when it
    returns one message (a coroutine)."""
    client_streaming: bool = False
    """True when the method takes a stream of requests (an async iterator of messages)
    instead of one request message."""


Methods = Mapping[tuple[str, str], MethodEntry]
"""``(service name, method name) -> MethodEntry``."""


def method_table(servicers: Iterable[Any]) -> dict[tuple[str, str], MethodEntry]:
    """The methods of purerpc servicers (generated classes) that the server serves."""
    table: dict[tuple[str, str], MethodEntry] = {}
    for servicer in servicers:
        service = servicer.service
        for name, bound in service.methods.items():
            cardinality = bound.signature.cardinality
            if cardinality not in SERVED_CARDINALITIES:
                continue
            table[(service.name, name)] = MethodEntry(
                bound.method_fn,
                bound.signature.request_type,
                cardinality in (Cardinality.UNARY_STREAM, Cardinality.STREAM_STREAM),
                cardinality in (Cardinality.STREAM_UNARY, Cardinality.STREAM_STREAM),
            )
    return table


class ClientSocket(GRPCProtoSocket):  # type: ignore[misc]  # purerpc is untyped
    """purerpc's client socket, except that losing the connection ends the streams.

    purerpc's reader task simply returns on EOF, leaving every open stream
    waiting forever for a message; a book client would hang on a server that
    died. Closing each stream's event queue makes its next read raise
    ``anyio.EndOfStream`` instead.
    """

    async def _reader_thread(self) -> None:
        try:
            await super()._reader_thread()
        finally:
            for stream in list(self._streams.values()):
                stream._incoming_events[0].close()
