"""The liquidity aggregator: same batching and change detection as the BBO one."""

from __future__ import annotations

import trio

from dragonflybot.aggregator import Aggregator, Fanout
from dragonflybot.aggregator.liquidity import (
    LiquidityAggregator,
    LiquidityState,
    split_for_liquidity,
)
from dragonflybot.core.fixed import ONE, parse
from dragonflybot.core.liquidity import TradeSide, build_ladder
from dragonflybot.core.view import VenueDown, VenueUpdate

from .conftest import make_view
from .test_aggregator import Recorder


def test_publishes_the_ladder_of_the_live_views_only_on_change() -> None:
    fanout: Fanout[LiquidityState] = Fanout()
    agg = LiquidityAggregator(5, fanout)
    a = make_view("binance", bids=(("1.0", "1"),), asks=(("1.1", "2"),))
    b = make_view("bitstamp", bids=(("1.0", "3"),), asks=(("1.2", "1"),))
    state = agg.apply_batch([a, b])
    assert state is not None and state.seq == 1
    assert state.ladder == build_ladder([a, b], 5)
    assert state.ladder.bids[0].amount == 4 * ONE
    assert state.live == {"binance", "bitstamp"}
    assert agg.apply_batch([a]) is None  # same levels: no publication
    cost = state.cost_to_trade(TradeSide.BUY, parse("2.5"))
    assert cost.filled and cost.worst_price == parse("1.2")
    down = agg.apply_batch([VenueDown("binance", "stale")])
    assert down is not None and down.seq == 2 and down.live == {"bitstamp"}
    assert down.ladder.bids[0].amount == 3 * ONE
    assert fanout.latest() is down
    assert agg.stats.publications == 2 and agg.depth == 5


async def test_tee_feeds_both_aggregators_and_both_end_with_the_feeds() -> None:
    fanout: Fanout[LiquidityState] = Fanout()
    liquidity = LiquidityAggregator(3, fanout)
    rec = Recorder()
    bbo = Aggregator(3, rec)
    a = make_view("binance", bids=(("1.0", "1"),), asks=(("1.1", "2"),))
    async with trio.open_nursery() as nursery:
        bbo_send, bbo_receive = trio.open_memory_channel[VenueUpdate](8)
        nursery.start_soon(bbo.run, bbo_receive)
        send = split_for_liquidity(nursery, bbo_send, liquidity, name="ethbtc")
        async with send:
            await send.send(a)
    assert rec.closed and fanout.closed
    assert rec.states[-1].book.bids[0].venue == "binance"
    latest = fanout.latest()
    assert latest is not None and latest.ladder == build_ladder([a], 3)
