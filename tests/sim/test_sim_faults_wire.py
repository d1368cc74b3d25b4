"""Every fault knob, observed the way a feed would: from the client side of a socket."""

from __future__ import annotations

import itertools

import msgspec
import pytest
import trio
import trio.testing
import trio_websocket

from dragonflybot.core.fixed import parse
from dragonflybot.errors import DecodeError
from dragonflybot.sim import Faults
from dragonflybot.sim.config import WsBackend
from dragonflybot.venues.binance import CommandError, DepthUpdate, Frame
from dragonflybot.venues.bitstamp import BookData, Envelope

from .conftest import closed, receive, receive_n, running, send_json

DIFFS = "?streams=ethbtc@depth@100ms"
BTS_DIFF = "diff_order_book_ethbtc"


def binance_update(text: str) -> DepthUpdate:
    """Decode and validate like a feed; raises on anything malformed."""
    frame = msgspec.json.decode(text, type=Frame)
    update = msgspec.json.decode(frame.data, type=DepthUpdate)
    for price, amount in update.b + update.a:
        parse(price), parse(amount)
    return update


async def subscribe_bitstamp(ws: trio_websocket.WebSocketConnection) -> None:
    await send_json(ws, {"event": "bts:subscribe", "data": {"channel": BTS_DIFF}})
    ack = msgspec.json.decode(await receive(ws), type=Envelope)
    assert ack.event == "bts:subscription_succeeded"


async def test_drop_after_n_messages(ws_backend: WsBackend) -> None:
    faults = {"binance": Faults(drop_after=5)}
    async with running(
        venues=("binance",), rate=100.0, faults=faults, ws_backend=ws_backend
    ) as sim:
        async with trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws:
            got = await closed(ws)
        assert len(got) == 5
        assert all(binance_update(t) for t in got)


async def test_drop_at_random_with_certainty() -> None:
    async with running(
        venues=("bitstamp",), rate=100.0, faults={"bitstamp": Faults(drop_probability=1.0)}
    ) as sim:
        async with trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws:
            await subscribe_bitstamp(ws)
            got = await closed(ws)
        assert len(got) == 1  # the first data frame, then the drop


async def test_faults_change_at_run_time() -> None:
    async with (
        running(venues=("binance",), rate=100.0) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws,
    ):
        first = await receive_n(ws, 10)
        sim.set_faults("binance", Faults(drop_after=15))
        assert sim.faults("binance") == Faults(drop_after=15)
        rest = await closed(ws)
        assert 10 + len(rest) == 15
        assert [binance_update(t) for t in first + rest]


async def test_binance_gap_makes_U_jump() -> None:
    faults = {"binance": Faults(gap_every=4)}
    async with (
        running(venues=("binance",), rate=100.0, faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws,
    ):
        updates = [binance_update(t) for t in await receive_n(ws, 30)]
    jumps = [b.U - a.u - 1 for a, b in itertools.pairwise(updates) if a.u + 1 != b.U]
    assert len(jumps) >= 9  # one skipped diff in every four
    assert all(jump > 0 for jump in jumps)


async def test_bitstamp_gap_omits_a_diff() -> None:
    rate = 500.0
    faults = {"bitstamp": Faults(gap_every=3)}
    async with (
        running(venues=("bitstamp",), rate=rate, faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws,
    ):
        await subscribe_bitstamp(ws)
        frames = await receive_n(ws, 12)
    stamps = [
        int(
            msgspec.json.decode(
                msgspec.json.decode(t, type=Envelope).data, type=BookData
            ).microtimestamp
        )
        for t in frames
    ]
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    period = int(1e6 / rate)
    # Updates are 2 ms apart in model time: a skipped diff shows as a 4 ms step.
    assert set(steps) == {period, 2 * period}
    assert steps.count(2 * period) >= 4


async def test_malformed_frames_every_nth(ws_backend: WsBackend) -> None:
    faults = {"binance": Faults(malformed_every=3)}
    async with (
        running(venues=("binance",), rate=100.0, faults=faults, ws_backend=ws_backend) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws,
    ):
        frames = await receive_n(ws, 18)
    kinds: dict[int, str] = {}
    for index, text in enumerate(frames, 1):
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError:
            kinds[index] = "bad json"
            continue
        try:
            binance_update(text)
        except msgspec.ValidationError:
            kinds[index] = "wrong types"
        except DecodeError:
            kinds[index] = "bad number"
    assert sorted(kinds) == [3, 6, 9, 12, 15, 18]
    assert [kinds[i] for i in sorted(kinds)] == ["bad json", "wrong types", "bad number"] * 2


async def test_stall_keeps_the_socket_open(autojump_clock: trio.testing.MockClock) -> None:
    faults = {"binance": Faults(stall_after=5, stall_seconds=30.0)}
    async with (
        running(venues=("binance",), rate=10.0, faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws,
    ):
        times = []
        updates = []
        for _ in range(10):
            updates.append(binance_update(await receive_with_long_wait(ws)))
            times.append(trio.current_time())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[4] >= 30.0  # nothing between the 5th and 6th message for the stall
    assert max(gaps[:4] + gaps[5:]) < 30.0
    # Frames queued during the stall are delivered afterwards, without a gap.
    assert all(a.u + 1 == b.U for a, b in itertools.pairwise(updates))


async def receive_with_long_wait(ws: trio_websocket.WebSocketConnection) -> str:
    with trio.fail_after(120):
        message = await ws.get_message()
    assert isinstance(message, str)
    return message


@pytest.mark.parametrize("path", [DIFFS, "/../ws/ethbtc@depth@100ms"])
async def test_binance_server_shutdown_notice_then_close(
    path: str, autojump_clock: trio.testing.MockClock
) -> None:
    faults = {"binance": Faults(reconnect_after=3, reconnect_grace=5.0)}
    async with running(venues=("binance",), rate=10.0, faults=faults) as sim:
        url = sim.endpoints["binance"].ws_url
        url = url + path if path.startswith("?") else url.removesuffix("/stream") + path[3:]
        async with trio_websocket.open_websocket_url(url) as ws:
            got = await closed(ws)
    notice = got[3]
    if path.startswith("?"):
        frame = msgspec.json.decode(notice, type=Frame)
        assert frame.stream == "!serverShutdown"
        assert msgspec.json.decode(frame.data, type=Frame).e == "serverShutdown"
    else:
        assert msgspec.json.decode(notice, type=Frame).e == "serverShutdown"
    # Data keeps flowing through the grace period (10/s for 5 s), then the venue closes.
    assert 45 <= len(got) - 4 <= 55


async def test_bitstamp_request_reconnect(autojump_clock: trio.testing.MockClock) -> None:
    faults = {"bitstamp": Faults(reconnect_after=2, reconnect_grace=1.0)}
    async with (
        running(venues=("bitstamp",), rate=10.0, faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws,
    ):
        await subscribe_bitstamp(ws)  # the ack is message 1
        got = await closed(ws)
    notice = msgspec.json.decode(got[1], type=Envelope)
    assert notice.event == "bts:request_reconnect"


async def test_rejected_subscriptions() -> None:
    faults = {v: Faults(reject_subscriptions=True) for v in ("binance", "bitstamp")}
    async with (
        running(faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url) as ws,
    ):
        await send_json(ws, {"method": "SUBSCRIBE", "params": ["ethbtc@depth@100ms"], "id": 3})
        error = msgspec.json.decode(await receive(ws), type=CommandError)
        assert error.id == 3
        with pytest.raises(trio_websocket.HandshakeError):
            async with trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS):
                pass
        async with trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws:
            await send_json(ws, {"event": "bts:subscribe", "data": {"channel": BTS_DIFF}})
            assert msgspec.json.decode(await receive(ws), type=Envelope).event == "bts:error"
            sim.set_faults("bitstamp", Faults())
            await subscribe_bitstamp(ws)


async def test_throttle_caps_frames_per_second(autojump_clock: trio.testing.MockClock) -> None:
    faults = {"binance": Faults(max_frames_per_second=5.0)}
    async with (
        running(venues=("binance",), rate=200.0, faults=faults) as sim,
        trio_websocket.open_websocket_url(sim.endpoints["binance"].ws_url + DIFFS) as ws,
    ):
        start = trio.current_time()
        times = []
        for _ in range(25):
            binance_update(await receive_with_long_wait(ws))
            times.append(trio.current_time() - start)
    # At most rate x window + the one-frame burst in every window.
    for t in times:
        in_window = sum(1 for u in times if t <= u < t + 1.0)
        assert in_window <= 6
    assert times[-1] >= 4.0
