"""Options: send-time stamps, counters, instrument grids, market shape."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
import trio
import trio_websocket

from dragonflybot.core.fixed import parse
from dragonflybot.errors import ConfigError
from dragonflybot.sim import Faults, MarketParams, SimConfig, serve_simulation
from dragonflybot.sim.capture import CaptureWriter, RecordKind
from dragonflybot.venues.binance import DepthUpdate, Frame
from dragonflybot.venues.bitstamp import BookData, Envelope
from dragonflybot.venues.registry import VENUES

from .conftest import receive, receive_n, running, send_json


class Stamped(msgspec.Struct):
    T_send_ns: int


async def test_send_time_stamps_on_data_payloads_only() -> None:
    before = time.time_ns()
    async with (
        running(rate=200.0, stamp_send_time=True) as sim,
        trio_websocket.open_websocket_url(
            sim.endpoints["binance"].ws_url + "?streams=ethbtc@depth@100ms"
        ) as bn,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as bs,
    ):
        binance = await receive_n(bn, 10)
        await send_json(bs, {"event": "bts:subscribe", "data": {"channel": "order_book_ethbtc"}})
        ack = await receive(bs)
        bitstamp = await receive_n(bs, 10)
    after = time.time_ns()
    assert "T_send_ns" not in ack
    stamps = []
    for text in binance:
        data = msgspec.json.decode(text, type=Frame).data
        msgspec.json.decode(data, type=DepthUpdate)  # feeds ignore the extra field
        stamps.append(msgspec.json.decode(data, type=Stamped).T_send_ns)
    for text in bitstamp:
        data = msgspec.json.decode(text, type=Envelope).data
        msgspec.json.decode(data, type=BookData)
        stamps.append(msgspec.json.decode(data, type=Stamped).T_send_ns)
    assert all(before <= s <= after for s in stamps)
    assert stamps[:10] == sorted(stamps[:10])


async def test_replayed_frames_get_stamps_too(tmp_path: Path) -> None:
    path = tmp_path / "x.cap"
    url = "wss://stream.binance.com:9443/stream?streams=ethbtc@depth@100ms"
    frame = (
        '{"stream":"ethbtc@depth@100ms",'
        '"data":{"e":"depthUpdate","E":1,"s":"ETHBTC","U":1,"u":1,"b":[],"a":[]}}'
    )
    with CaptureWriter.open(path) as writer:
        writer.write(RecordKind.CONNECT, 1, url, b"")
        writer.write(RecordKind.WS_IN, 2, url, frame.encode())
    async with (
        running(replay=(str(path),), stamp_send_time=True, as_fast_as_possible=True) as sim,
        trio_websocket.open_websocket_url(
            sim.endpoints["binance"].ws_url + "?streams=ethbtc@depth@100ms"
        ) as ws,
    ):
        text = await receive(ws)
    data = msgspec.json.decode(text, type=Frame).data
    assert msgspec.json.decode(data, type=Stamped).T_send_ns > 0
    assert (
        text.replace(f',"T_send_ns":{msgspec.json.decode(data, type=Stamped).T_send_ns}', "")
        == frame
    )


async def test_counters() -> None:
    async with running(venues=("binance",), rate=200.0) as sim:
        assert sim.frames_sent("binance") == 0 and sim.connections("binance") == 0
        url = sim.endpoints["binance"].ws_url + "?streams=ethbtc@depth@100ms"
        async with trio_websocket.open_websocket_url(url) as ws:
            await receive_n(ws, 25)
            assert sim.connections("binance") == 1
            # The server counts a batch once its write returns, which may be just after
            # the client has read it: wait (bounded) for the count to catch up.
            with trio.fail_after(5):
                while sim.frames_sent("binance") < 25:  # noqa: ASYNC110 - a counter, no event
                    await trio.sleep(0.01)
        with pytest.raises(ConfigError):
            sim.frames_sent("bitstamp")


async def test_tick_and_lot_overrides_show_on_the_wire() -> None:
    async with (
        running(
            venues=("bitstamp",),
            rate=200.0,
            tick_sizes={"ethbtc": "0.000001"},
            lot_sizes={"ethbtc": "0.00005"},
        ) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws,
    ):
        await send_json(ws, {"event": "bts:subscribe", "data": {"channel": "order_book_ethbtc"}})
        await receive(ws)
        data = msgspec.json.decode(
            msgspec.json.decode(await receive(ws), type=Envelope).data, type=BookData
        )
    prices = [parse(p) for p, _ in data.bids + data.asks]
    amounts = [parse(a) for _, a in data.bids + data.asks]
    assert all(p % parse("0.000001") == 0 for p in prices)
    assert any(p % parse("0.00001") for p in prices)  # the finer grid is used
    assert all(a % parse("0.00005") == 0 for a in amounts)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_sizes": {"ethbtc": "0"}},
        {"lot_sizes": {"ethbtc": "0.000000001"}},
        {"tick_sizes": {"btcusd": "1"}},
        {"rate": 0.0},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises((ConfigError, TypeError)):
        SimConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"venues": ("nosuchvenue",)}, {"faults": {"nosuchvenue": Faults()}}]
)
async def test_unknown_venue_is_a_config_error_naming_the_known_ones(
    kwargs: dict[str, object],
) -> None:
    config = SimConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'nosuchvenue'.*binance, bitstamp"):
        config.check_venues(VENUES)
    with pytest.raises(ConfigError, match="nosuchvenue"):
        await serve_simulation(config)


def test_market_params_are_validated() -> None:
    with pytest.raises(ConfigError):
        MarketParams(add_weight=0.0)
    with pytest.raises(ConfigError):
        MarketParams(noise_keep=1.0)
    config = SimConfig(depth=30, market=MarketParams(max_lots=3))
    assert config.market_params() == MarketParams(depth=30, max_lots=3)


async def test_canonical_instrument_names_are_simulated_under_their_compact_name() -> None:
    config = SimConfig(instruments=("ETH-BTC", "btcusdt"))
    assert config.instruments == ("ethbtc", "btcusdt")
    spec = config.spec("ethbtc")
    assert spec.instrument is not None and spec.instrument.name == "ETH-BTC"
    assert config.spec("foobar").instrument is None  # invented names still simulate
    async with running(venues=("binance",), instruments=("ETH-BTC",)) as sim:
        assert sim.book("binance", "ETH-BTC").top_bids(1) == sim.book("binance", "ethbtc").top_bids(
            1
        )
