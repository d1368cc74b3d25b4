"""``dragonflybot.v1.LiquidityService``: the aggregated-liquidity ladder and cost to trade.

The gRPC face of the second aggregator (``aggregator.liquidity``), served on every
gRPC address of the process beside ``BookService`` (``proto/dragonflybot/v1/liquidity.proto``);
FIX clients get the same data (docs/fix.md). A request names its instrument as
``BookService`` requests do (canonical or compact, ``instrument.resolve_served``);
an empty name means the address's default instrument (the one its Keyrock
``BookSummary`` streams). Prices and amounts travel as exact decimal strings: a
ladder total or a VWAP is exact, and a double would round it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import attrs
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
from dragonflybot.errors import ConfigError, DecodeError
from dragonflybot.instrument import canonical, resolve_served
from dragonflybot.service.proto import liquidity_v1_pb2
from dragonflybot.service.proto.liquidity_v1_grpc import LiquidityServiceServicer

SERVICE_NAME: Final = "dragonflybot.v1.LiquidityService"

# protoc builds these classes at import time; typed Any as in service.messages.
LadderUpdate: Final[Any] = liquidity_v1_pb2.LadderUpdate  # type: ignore[attr-defined]
LadderLevelMessage: Final[Any] = liquidity_v1_pb2.LadderLevel  # type: ignore[attr-defined]
VenueAmount: Final[Any] = liquidity_v1_pb2.VenueAmount  # type: ignore[attr-defined]
CostToTradeReply: Final[Any] = liquidity_v1_pb2.CostToTradeReply  # type: ignore[attr-defined]
BUY: Final[int] = liquidity_v1_pb2.SIDE_BUY  # type: ignore[attr-defined]
SELL: Final[int] = liquidity_v1_pb2.SIDE_SELL  # type: ignore[attr-defined]


@attrs.frozen
class LadderSource:
    """One instrument's ladder: its canonical name, fan-out and ``liquidity_depth``."""

    name: str
    ladders: Fanout[LiquidityState]
    depth: int


def _level(level: LadderLevel) -> Any:
    return LadderLevelMessage(
        price=fixed.to_str(level.price),
        amount=fixed.to_str(level.amount),
        venues=[VenueAmount(venue=v, amount=fixed.to_str(a)) for v, a in level.venues],
    )


def ladder_update(state: LiquidityState, depth: int, instrument: str = "") -> Any:
    return LadderUpdate(
        instrument=instrument,
        bids=[_level(lv) for lv in state.ladder.bids[:depth]],
        asks=[_level(lv) for lv in state.ladder.asks[:depth]],
        live_venues=sorted(state.live),
    )


def cost_reply(cost: TradeCost, instrument: str = "") -> Any:
    slippage = cost.slippage
    bps = cost.slippage_bps
    return CostToTradeReply(
        instrument=instrument,
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


class LiquidityService(LiquidityServiceServicer):
    """Serves the ladders given; ``default``: the instrument an empty request names."""

    def __init__(self, sources: Iterable[LadderSource], *, default: str | None = None) -> None:
        self._sources: dict[str, LadderSource] = {}
        for source in sources:
            if canonical(source.name) != source.name:
                raise ConfigError(f"ladder instrument {source.name!r} is not canonical")
            if source.name in self._sources:
                raise ConfigError(f"ladder instrument {source.name!r} is given twice")
            self._sources[source.name] = source
        self._default = default if default in self._sources else None

    def _names(self) -> str:
        return ", ".join(self._sources) or "none"

    def _resolve(self, name: str) -> LadderSource:
        if not name:
            if self._default is None:
                raise _invalid(f"instrument is required; ladders on this server: {self._names()}")
            return self._sources[self._default]
        key = resolve_served(name, self._sources)
        if key is None:
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise RpcFailedError(
                Status(
                    StatusCode.NOT_FOUND,
                    f"no ladder for instrument {shown!r}; ladders on this server: {self._names()}",
                )
            )
        return self._sources[key]

    async def Ladder(self, input_message: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        source = self._resolve(input_message.instrument)
        depth = input_message.depth or source.depth
        if depth > source.depth:
            raise _invalid(f"depth {depth}: {source.name} has at most {source.depth} (0 = all)")
        last: Any = None
        with source.ladders.subscribe() as states:
            async for state in states:
                update = ladder_update(state, depth, source.name)
                if update != last:  # a change deeper than asked is not news
                    last = update
                    yield update
        raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "the ladder is no longer published"))

    async def CostToTrade(self, input_message: Any) -> Any:
        source = self._resolve(input_message.instrument)
        side = {BUY: TradeSide.BUY, SELL: TradeSide.SELL}.get(input_message.side)
        if side is None:
            raise _invalid("side must be SIDE_BUY or SIDE_SELL")
        try:
            quantity = fixed.parse(input_message.quantity)
        except DecodeError as exc:
            raise _invalid(f"quantity: {exc}") from None
        if quantity <= 0:
            raise _invalid("quantity must be > 0")
        state = source.ladders.latest()
        if state is None:
            raise RpcFailedError(Status(StatusCode.UNAVAILABLE, "no market data yet"))
        return cost_reply(state.cost_to_trade(side, quantity), source.name)
