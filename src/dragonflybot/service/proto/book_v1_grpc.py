import purerpc
from . import book_v1_pb2 as dragonflybot_dot_v1_dot_book__pb2
from google.protobuf import duration_pb2 as google_dot_protobuf_dot_duration__pb2
from google.protobuf import timestamp_pb2 as google_dot_protobuf_dot_timestamp__pb2


class BookServiceServicer(purerpc.Servicer):
    async def StreamBook(self, input_message):
        raise NotImplementedError()

    async def ListInstruments(self, input_message):
        raise NotImplementedError()

    async def StreamVenueStatus(self, input_message):
        raise NotImplementedError()

    @property
    def service(self) -> purerpc.Service:
        service_obj = purerpc.Service(
            "dragonflybot.v1.BookService"
        )
        service_obj.add_method(
            "StreamBook",
            self.StreamBook,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_book__pb2.BookRequest,
                dragonflybot_dot_v1_dot_book__pb2.Book,
            )
        )
        service_obj.add_method(
            "ListInstruments",
            self.ListInstruments,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                dragonflybot_dot_v1_dot_book__pb2.ListInstrumentsRequest,
                dragonflybot_dot_v1_dot_book__pb2.ListInstrumentsResponse,
            )
        )
        service_obj.add_method(
            "StreamVenueStatus",
            self.StreamVenueStatus,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_book__pb2.VenueStatusRequest,
                dragonflybot_dot_v1_dot_book__pb2.VenueStatusUpdate,
            )
        )
        return service_obj


class BookServiceStub:
    def __init__(self, channel):
        self._client = purerpc.Client(
            "dragonflybot.v1.BookService",
            channel
        )
        self.StreamBook = self._client.get_method_stub(
            "StreamBook",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_book__pb2.BookRequest,
                dragonflybot_dot_v1_dot_book__pb2.Book,
            )
        )
        self.ListInstruments = self._client.get_method_stub(
            "ListInstruments",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                dragonflybot_dot_v1_dot_book__pb2.ListInstrumentsRequest,
                dragonflybot_dot_v1_dot_book__pb2.ListInstrumentsResponse,
            )
        )
        self.StreamVenueStatus = self._client.get_method_stub(
            "StreamVenueStatus",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_book__pb2.VenueStatusRequest,
                dragonflybot_dot_v1_dot_book__pb2.VenueStatusUpdate,
            )
        )