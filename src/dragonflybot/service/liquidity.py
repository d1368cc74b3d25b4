"""``dragonflybot.liquidity.v1.Liquidity``: the aggregated-liquidity ladder and cost to trade.

The gRPC face of the second aggregator (``aggregator.liquidity``), served on the
instrument's own address beside ``BookSummary``; FIX clients get the same data
(docs/fix.md). Prices and amounts travel as exact decimal strings: a ladder total
or a VWAP is exact, and a double would round it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from purerpc import RpcFailedError, Status, StatusCode

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.liquidity import LiquidityState
from dragonflybot.core import fixed
from dragonflybot.core.liquidity import (
    LadderLevel,
    TradeCost,
    TradeSide,
    format_number,
    format_ratio,
)
from dragonflybot.errors import DecodeError
from dragonflybot.service.proto import liquidity_pb2
from dragonflybot.service.proto.liquidity_grpc import LiquidityServicer

SERVICE_NAME = "dragonflybot.liquidity.v1.Liquidity"

# protoc builds these classes at import time; typed Any as in service.messages.
LadderUpdate: Final[Any] = liquidity_pb2.LadderUpdate  # type: ignore[attr-defined]
LadderLevelMessage: Final[Any] = liquidity_pb2.LadderLevel  # type: ignore[attr-defined]
VenueAmount: Final[Any] = liquidity_pb2.VenueAmount  # type: ignore[attr-defined]
CostToTradeReply: Final[Any] = liquidity_pb2.CostToTradeReply  # type: ignore[attr-defined]
BUY: Final[int] = liquidity_pb2.BUY  # type: ignore[attr-defined]
SELL: Final[int] = liquidity_pb2.SELL  # type: ignore[attr-defined]


def _level(level: LadderLevel) -> Any:
    return LadderLevelMessage(
        price=fixed.to_str(level.price),
        amount=fixed.to_str(level.amount),
        venues=[VenueAmount(venue=v, amount=fixed.to_str(a)) for v, a in level.venues],
    )


def ladder_update(state: LiquidityState, depth: int) -> Any:
    return LadderUpdate(
        bids=[_level(lv) for lv in state.ladder.bids[:depth]],
        asks=[_level(lv) for lv in state.ladder.asks[:depth]],
        live_venues=sorted(state.live),
    )


def cost_reply(cost: TradeCost) -> Any:
    slippage = cost.slippage
    bps = cost.slippage_bps
    return CostToTradeReply(
        filled=cost.filled,
        quantity=fixed.to_str(cost.quantity),
        available=fixed.to_str(cost.available),
        taken=fixed.to_str(cost.taken),
        vwap=format_ratio(cost.vwap) if cost.vwap is not None else "",
        worst_price=fixed.to_str(cost.worst_price) if cost.worst_price is not None else "",
        mid=format_ratio(cost.mid) if cost.mid is not None else "",
        slippage=format_ratio(slippage) if slippage is not None else "",
        slippage_bps=format_number(bps) if bps is not None else "",
        by_venue=[VenueAmount(venue=v, amount=fixed.to_str(a)) for v, a in cost.by_venue],
    )


def _invalid(text: str) -> RpcFailedError:
    return RpcFailedError(Status(StatusCode.INVALID_ARGUMENT, text))


class LiquidityService(LiquidityServicer):
    """Serves one instrument's ladder fan-out (``depth``: its ``liquidity_depth``)."""

    def __init__(self, ladders: Fanout[LiquidityState], depth: int) -> None:
        self._ladders = ladders
        self._depth = depth

    async def Ladder(self, input_message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        depth = input_message.depth or self._depth
        if depth > self._depth:
            raise _invalid(f"depth {depth}: at most {self._depth} (0 = all)")
        last: Any = None
        with self._ladders.subscribe() as states:
            async for state in states:
                update = ladder_update(state, depth)
                if update != last:  # a change deeper than asked is not news
                    last = update
                    yield update
        raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "the ladder is no longer published"))

    async def CostToTrade(self, input_message: Any) -> Any:
        side = {BUY: TradeSide.BUY, SELL: TradeSide.SELL}.get(input_message.side)
        if side is None:
            raise _invalid("side must be BUY or SELL")
        try:
            quantity = fixed.parse(input_message.quantity)
        except DecodeError as exc:
            raise _invalid(f"quantity: {exc}") from None
        if quantity <= 0:
            raise _invalid("quantity must be > 0")
        state = self._ladders.latest()
        if state is None:
            raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "no market data yet"))
        return cost_reply(state.cost_to_trade(side, quantity))
