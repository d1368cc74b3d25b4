import purerpc
from . import orderbook_pb2 as orderbook__pb2


class OrderbookAggregatorServicer(purerpc.Servicer):
    async def BookSummary(self, input_message):
        raise NotImplementedError()

    @property
    def service(self) -> purerpc.Service:
        service_obj = purerpc.Service(
            "orderbook.OrderbookAggregator"
        )
        service_obj.add_method(
            "BookSummary",
            self.BookSummary,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                orderbook__pb2.Empty,
                orderbook__pb2.Summary,
            )
        )
        return service_obj


class OrderbookAggregatorStub:
    def __init__(self, channel):
        self._client = purerpc.Client(
            "orderbook.OrderbookAggregator",
            channel
        )
        self.BookSummary = self._client.get_method_stub(
            "BookSummary",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                orderbook__pb2.Empty,
                orderbook__pb2.Summary,
            )
        )