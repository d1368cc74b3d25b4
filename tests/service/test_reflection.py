"""Server reflection answered by the servicers directly (requests as an async iterator)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from hypothesis import given
from hypothesis import strategies as st

from dragonflybot.service import BookSummaryService, SummaryPublisher
from dragonflybot.service.book_v1 import BookServiceV1
from dragonflybot.service.proto import reflection_v1_pb2, reflection_v1alpha_pb2
from dragonflybot.service.reflection import (
    INVALID_ARGUMENT,
    NOT_FOUND,
    V1_SERVICE,
    V1ALPHA_SERVICE,
    ReflectionV1,
    ReflectionV1Alpha,
    Reflector,
    reflection_servicers,
)

V1 = reflection_v1_pb2
V1ALPHA = reflection_v1alpha_pb2
BOOK_V1 = "dragonflybot.v1.BookService"
KEYROCK = "orderbook.OrderbookAggregator"


async def requests(*messages: Any) -> AsyncIterator[Any]:
    for message in messages:
        yield message


async def ask(servicer: Any, *messages: Any) -> list[Any]:
    return [r async for r in servicer.ServerReflectionInfo(requests(*messages))]


def servicers() -> list[Any]:
    publisher = SummaryPublisher()
    return [BookSummaryService(publisher.books), BookServiceV1([])]


def file_names(response: Any) -> list[str]:
    out = []
    for data in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(data)
        out.append(proto.name)
    return out


@pytest.mark.parametrize(("servicer_index", "messages"), [(0, V1), (1, V1ALPHA)])
async def test_lists_every_service_in_both_versions(servicer_index: int, messages: Any) -> None:
    servicer = reflection_servicers(servicers())[servicer_index]
    (response,) = await ask(servicer, messages.ServerReflectionRequest(list_services="*"))
    names = [s.name for s in response.list_services_response.service]
    assert names == sorted([BOOK_V1, KEYROCK, V1_SERVICE, V1ALPHA_SERVICE])
    assert response.original_request.list_services == "*"


async def test_a_symbol_comes_with_its_dependencies_each_once_per_stream() -> None:
    (servicer, _) = reflection_servicers(servicers())
    first, again, method, timestamp = await ask(
        servicer,
        V1.ServerReflectionRequest(file_containing_symbol=BOOK_V1),
        V1.ServerReflectionRequest(file_containing_symbol="dragonflybot.v1.Book"),
        V1.ServerReflectionRequest(file_containing_symbol=f"{BOOK_V1}.StreamBook"),
        V1.ServerReflectionRequest(file_by_filename="google/protobuf/timestamp.proto"),
    )
    assert file_names(first) == [
        "dragonflybot/v1/book.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
    ]
    # Already sent: the file itself still answers, alone.
    assert file_names(again) == ["dragonflybot/v1/book.proto"]
    assert file_names(method) == ["dragonflybot/v1/book.proto"]
    assert file_names(timestamp) == ["google/protobuf/timestamp.proto"]


async def test_the_files_sent_rebuild_the_service_in_an_empty_pool() -> None:
    """What a client does with the answer: the descriptors must be complete."""
    (servicer, _) = reflection_servicers(servicers())
    (response,) = await ask(servicer, V1.ServerReflectionRequest(file_containing_symbol=BOOK_V1))
    pool = descriptor_pool.DescriptorPool()
    protos = [
        descriptor_pb2.FileDescriptorProto.FromString(d)
        for d in response.file_descriptor_response.file_descriptor_proto
    ]
    for proto in reversed(protos):  # dependencies first
        pool.Add(proto)
    service = pool.FindServiceByName(BOOK_V1)
    assert set(service.methods_by_name) == {"StreamBook", "ListInstruments", "StreamVenueStatus"}
    book = pool.FindMessageTypeByName("dragonflybot.v1.Book")
    assert book.fields_by_name["publish_time"].message_type.full_name == (
        "google.protobuf.Timestamp"
    )


async def test_unknown_names_are_errors_on_a_stream_that_goes_on() -> None:
    (_, servicer) = reflection_servicers(servicers())
    missing, empty, too_long, listed = await ask(
        servicer,
        V1ALPHA.ServerReflectionRequest(file_containing_symbol="no.such.Symbol", host="h"),
        V1ALPHA.ServerReflectionRequest(),
        V1ALPHA.ServerReflectionRequest(file_by_filename="x" * 10_000),
        V1ALPHA.ServerReflectionRequest(list_services=""),
    )
    assert missing.error_response.error_code == NOT_FOUND
    assert "no.such.Symbol" in missing.error_response.error_message
    assert missing.valid_host == "h"
    assert empty.error_response.error_code == INVALID_ARGUMENT
    assert too_long.error_response.error_code == INVALID_ARGUMENT
    assert len(too_long.error_response.error_message) < 200
    assert listed.WhichOneof("message_response") == "list_services_response"


async def test_extension_queries_answer_from_the_pool() -> None:
    reflector = Reflector(["x"])
    servicer = ReflectionV1(reflector)
    numbers, containing = await ask(
        servicer,
        V1.ServerReflectionRequest(all_extension_numbers_of_type="google.protobuf.FieldOptions"),
        V1.ServerReflectionRequest(
            file_containing_extension=V1.ExtensionRequest(
                containing_type="dragonflybot.v1.Book", extension_number=99
            )
        ),
    )
    answer = numbers.all_extension_numbers_response
    assert answer.base_type_name == "google.protobuf.FieldOptions"
    assert list(answer.extension_number) == sorted(answer.extension_number)
    assert containing.error_response.error_code == NOT_FOUND


names = st.text(max_size=600)
any_request = st.one_of(
    st.builds(lambda n: V1ALPHA.ServerReflectionRequest(file_by_filename=n), names),
    st.builds(lambda n: V1ALPHA.ServerReflectionRequest(file_containing_symbol=n), names),
    st.builds(lambda n: V1ALPHA.ServerReflectionRequest(all_extension_numbers_of_type=n), names),
    st.builds(lambda n: V1ALPHA.ServerReflectionRequest(list_services=n), names),
    st.builds(
        lambda n, k: V1ALPHA.ServerReflectionRequest(
            file_containing_extension=V1ALPHA.ExtensionRequest(
                containing_type=n, extension_number=k
            )
        ),
        names,
        st.integers(-(2**31), 2**31 - 1),
    ),
)


@given(st.lists(any_request, max_size=8))
def test_any_request_gets_exactly_one_answer(batch: list[Any]) -> None:
    """Invariant: one response per request, echoing it, never an exception."""
    reflector = Reflector([BOOK_V1])
    sent: set[str] = set()
    for request in batch:
        response = reflector.respond(request, V1ALPHA, sent)
        assert response.original_request == request
        assert response.WhichOneof("message_response") is not None


def test_reflection_v1alpha_servicer_is_the_v1alpha_service() -> None:
    servicer = ReflectionV1Alpha(Reflector([]))
    assert servicer.service.name == V1ALPHA_SERVICE
