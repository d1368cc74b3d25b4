"""gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``): tools discover the API.

grpcurl, Postman, grpcui and grpcio's ``ProtoReflectionDescriptorDatabase`` ask a
server which services it has and for the protobuf files that define them, so a
user needs no ``.proto`` file. Both versions are served: v1 is the standard,
v1alpha is what most deployed tools (and grpcio-reflection) still speak.

Answers come from a protobuf descriptor pool (the default one, where every
generated module registers its file). A file is sent with its transitive
dependencies, each at most once per stream (as grpc's C++ server does), so a
client resolving ``dragonflybot.v1.BookService`` gets ``google/protobuf/timestamp.proto``
along with it and never the same file twice. Requests are untrusted: an unknown
symbol or file is an ``error_response`` (NOT_FOUND) on the stream, which goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from dragonflybot.service.proto import (
    reflection_v1_grpc,
    reflection_v1_pb2,
    reflection_v1alpha_grpc,
    reflection_v1alpha_pb2,
)

V1_SERVICE: Final = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE: Final = "grpc.reflection.v1alpha.ServerReflection"

NOT_FOUND: Final = 5
INVALID_ARGUMENT: Final = 3
"""gRPC status codes, as the ``ErrorResponse.error_code`` numbers."""

MAX_NAME: Final = 512
"""Longest symbol or file name looked up; a longer one is refused, not echoed."""


class Reflector:
    """Answers reflection requests from ``pool`` for the services named; one per server.

    Version-free: ``respond`` builds its answer with the message classes of the
    version the request came in (``messages``: a ``reflection_*_pb2`` module).
    """

    def __init__(
        self,
        services: Iterable[str],
        pool: descriptor_pool.DescriptorPool | None = None,
    ) -> None:
        self.services = tuple(sorted(set(services)))
        self._pool = pool if pool is not None else descriptor_pool.Default()

    def respond(self, request: Any, messages: Any, sent: set[str]) -> Any:
        """The response to one request; ``sent``: files already sent on this stream."""
        response = messages.ServerReflectionResponse(
            valid_host=request.host, original_request=request
        )
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                response.list_services_response.service.extend(
                    messages.ServiceResponse(name=name) for name in self.services
                )
            elif kind == "file_by_filename":
                name = _checked(request.file_by_filename)
                self._send_file(response, self._pool.FindFileByName(name), sent)
            elif kind == "file_containing_symbol":
                name = _checked(request.file_containing_symbol)
                self._send_file(response, self._file_of_symbol(name), sent)
            elif kind == "file_containing_extension":
                ext = request.file_containing_extension
                message = self._pool.FindMessageTypeByName(_checked(ext.containing_type))
                found = self._pool.FindExtensionByNumber(message, ext.extension_number)
                self._send_file(
                    response, self._pool.FindFileContainingSymbol(found.full_name), sent
                )
            elif kind == "all_extension_numbers_of_type":
                name = _checked(request.all_extension_numbers_of_type)
                message = self._pool.FindMessageTypeByName(name)
                numbers = sorted(e.number for e in self._pool.FindAllExtensions(message))
                answer = response.all_extension_numbers_response
                answer.base_type_name = name
                answer.extension_number.extend(numbers)
            else:
                _error(response, INVALID_ARGUMENT, "empty reflection request")
        except KeyError as exc:
            _error(response, NOT_FOUND, _not_found(exc))
        except ValueError as exc:
            _error(response, INVALID_ARGUMENT, str(exc))
        return response

    def _file_of_symbol(self, name: str) -> FileDescriptor:
        """The file defining ``name``: a message, enum, field, service or a service's method.

        The pool knows no methods by name, so ``pkg.Service.Method`` is looked up as
        its service (reflection clients ask for methods too).
        """
        try:
            return self._pool.FindFileContainingSymbol(name)
        except KeyError:
            service_name, _, method = name.rpartition(".")
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                pass
            else:
                if method in service.methods_by_name:
                    return service.file
            raise

    def _send_file(self, response: Any, found: FileDescriptor, sent: set[str]) -> None:
        files = response.file_descriptor_response.file_descriptor_proto
        for file in _with_dependencies(found):
            if file.name not in sent:
                sent.add(file.name)
                files.append(file.serialized_pb)
        if not files:
            # Everything was sent before on this stream; the file itself still answers.
            files.append(found.serialized_pb)


def _with_dependencies(root: FileDescriptor) -> list[FileDescriptor]:
    """``root`` first, then every file it imports, transitively, each once."""
    out: list[FileDescriptor] = []
    seen: set[str] = set()
    todo = [root]
    while todo:
        file = todo.pop()
        if file.name in seen:
            continue
        seen.add(file.name)
        out.append(file)
        todo.extend(reversed(file.dependencies))
    return out


def _checked(name: str) -> str:
    if not name:
        raise ValueError("an empty name was asked for")
    if len(name) > MAX_NAME:
        raise ValueError(f"a name of {len(name)} characters was asked for (at most {MAX_NAME})")
    return name


def _not_found(exc: KeyError) -> str:
    text = str(exc.args[0]) if exc.args else "not found"
    return text if len(text) <= MAX_NAME + 64 else text[: MAX_NAME + 64] + "..."


def _error(response: Any, code: int, message: str) -> None:
    response.error_response.error_code = code
    response.error_response.error_message = message


async def _answer(
    reflector: Reflector, requests: AsyncIterator[Any], messages: Any
) -> AsyncIterator[Any]:
    sent: set[str] = set()
    async for request in requests:
        yield reflector.respond(request, messages, sent)


class ReflectionV1(reflection_v1_grpc.ServerReflectionServicer):
    """``grpc.reflection.v1.ServerReflection``."""

    def __init__(self, reflector: Reflector) -> None:
        self._reflector = reflector

    async def ServerReflectionInfo(self, input_messages: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        async for response in _answer(self._reflector, input_messages, reflection_v1_pb2):
            yield response


class ReflectionV1Alpha(reflection_v1alpha_grpc.ServerReflectionServicer):
    """``grpc.reflection.v1alpha.ServerReflection`` (same answers, the older package)."""

    def __init__(self, reflector: Reflector) -> None:
        self._reflector = reflector

    async def ServerReflectionInfo(self, input_messages: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        async for response in _answer(self._reflector, input_messages, reflection_v1alpha_pb2):
            yield response


def reflection_servicers(servicers: Iterable[Any]) -> list[Any]:
    """Both reflection servicers, listing the services of ``servicers`` and themselves.

    ``GrpcServer([*servicers, *reflection_servicers(servicers)], ...)``.
    """
    names = [servicer.service.name for servicer in servicers]
    reflector = Reflector([*names, V1_SERVICE, V1ALPHA_SERVICE])
    return [ReflectionV1(reflector), ReflectionV1Alpha(reflector)]
