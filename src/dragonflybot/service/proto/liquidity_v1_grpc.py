import purerpc
from . import liquidity_v1_pb2 as dragonflybot_dot_v1_dot_liquidity__pb2


class LiquidityServiceServicer(purerpc.Servicer):
    async def Ladder(self, input_message):
        raise NotImplementedError()

    async def CostToTrade(self, input_message):
        raise NotImplementedError()

    @property
    def service(self) -> purerpc.Service:
        service_obj = purerpc.Service(
            "dragonflybot.v1.LiquidityService"
        )
        service_obj.add_method(
            "Ladder",
            self.Ladder,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_liquidity__pb2.LadderRequest,
                dragonflybot_dot_v1_dot_liquidity__pb2.LadderUpdate,
            )
        )
        service_obj.add_method(
            "CostToTrade",
            self.CostToTrade,
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                dragonflybot_dot_v1_dot_liquidity__pb2.CostToTradeRequest,
                dragonflybot_dot_v1_dot_liquidity__pb2.CostToTradeReply,
            )
        )
        return service_obj


class LiquidityServiceStub:
    def __init__(self, channel):
        self._client = purerpc.Client(
            "dragonflybot.v1.LiquidityService",
            channel
        )
        self.Ladder = self._client.get_method_stub(
            "Ladder",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_STREAM,
                dragonflybot_dot_v1_dot_liquidity__pb2.LadderRequest,
                dragonflybot_dot_v1_dot_liquidity__pb2.LadderUpdate,
            )
        )
        self.CostToTrade = self._client.get_method_stub(
            "CostToTrade",
            purerpc.RPCSignature(
                purerpc.Cardinality.UNARY_UNARY,
                dragonflybot_dot_v1_dot_liquidity__pb2.CostToTradeRequest,
                dragonflybot_dot_v1_dot_liquidity__pb2.CostToTradeReply,
            )
        )