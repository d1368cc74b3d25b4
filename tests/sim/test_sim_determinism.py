"""Same seed (and epoch), same messages; another seed, other messages."""

from __future__ import annotations

import trio_websocket

from .conftest import receive, receive_n, running, send_json

STREAMS = "?streams=ethbtc@depth@100ms/ethbtc@depth10@100ms/btcusdt@depth@100ms"
CHANNELS = ("diff_order_book_ethbtc", "order_book_ethbtc", "diff_order_book_btcusdt")


async def first_frames(seed: int, n: int = 90) -> tuple[list[str], list[str]]:
    """The first ``n`` messages on each venue, subscribed before the first update."""
    async with (
        running(seed=seed, rate=200.0, instruments=("ethbtc", "btcusdt"), start_paused=True) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + STREAMS) as bn,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as bs,
    ):
        for channel in CHANNELS:
            await send_json(bs, {"event": "bts:subscribe", "data": {"channel": channel}})
        acks = await receive_n(bs, len(CHANNELS))
        sim.resume()
        return await receive_n(bn, n), acks + await receive_n(bs, n)


async def test_same_seed_same_messages_other_seed_other_messages() -> None:
    a = await first_frames(42)
    b = await first_frames(42)
    c = await first_frames(43)
    assert a == b
    assert not set(a[0]) & set(c[0])
    assert not set(a[1][3:]) & set(c[1][3:])


async def test_a_late_subscriber_sees_the_same_stream_from_where_it_joined() -> None:
    async with running(seed=9, rate=1000.0, venues=("binance",)) as sim:
        url = sim.endpoints["binance"].ws_url
        async with trio_websocket.open_websocket_url(url + "?streams=ethbtc@depth@100ms") as early:
            first = await receive_n(early, 40)
            async with trio_websocket.open_websocket_url(url) as late:
                await send_json(
                    late, {"method": "SUBSCRIBE", "params": ["ethbtc@depth@100ms"], "id": 1}
                )
                await receive(late)  # ack
                second = await receive_n(late, 10)
            more = await receive_n(early, 200)
    seen = first + more
    assert second[0] in seen
    at = seen.index(second[0])
    assert seen[at : at + 10] == second
