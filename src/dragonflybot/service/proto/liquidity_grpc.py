import purerpc
from . import liquidity_pb2 as liquidity__pb2


class LiquidityServicer(purerpc.Servicer):
    async def Ladder(self, input_message):
        raise NotImplementedError()

    async def CostToTrade(self, input_message):
        raise NotImplementedError()

    @property
    def service(self) -> purerpc.Service:
        service_obj = purerpc.Service(
            "dragonflybot.liquidity.v1.Liquidity"
        )
        service_obj.add_method(
            "Ladder",
            self.Ladder,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                liquidity__pb2.LadderRequest,
                liquidity__pb2.LadderUpdate,
            )
        )
        service_obj.add_method(
            "CostToTrade",
            self.CostToTrade,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                liquidity__pb2.CostToTradeRequest,
                liquidity__pb2.CostToTradeReply,
            )
        )
        return service_obj


class LiquidityStub:
    def __init__(self, channel):
        self._client = purerpc.Client(
            "dragonflybot.liquidity.v1.Liquidity",
            channel
        )
        self.Ladder = self._client.get_method_stub(
            "Ladder",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                liquidity__pb2.LadderRequest,
                liquidity__pb2.LadderUpdate,
            )
        )
        self.CostToTrade = self._client.get_method_stub(
            "CostToTrade",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                liquidity__pb2.CostToTradeRequest,
                liquidity__pb2.CostToTradeReply,
            )
        )