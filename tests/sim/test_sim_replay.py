"""Recording a venue and serving the capture back; serving the shared real recordings."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import httpx
import msgspec
import pytest
import trio
import trio.testing
import trio_websocket

from dragonflybot.sim import SimHandle, ws_lean
from dragonflybot.sim import replay as replay_module
from dragonflybot.sim.capture import CaptureRecord, RecordKind, read_capture
from dragonflybot.sim.lineformat import read_lines
from dragonflybot.sim.record import RecordOptions, record
from dragonflybot.venues.binance import PartialDepth

from .conftest import receive, receive_n, running


async def record_from_sim(
    sim: SimHandle,
    venue: str,
    path: Path,
    *,
    mode: str = "depth",
    count: int = 40,
    instrument: str = "ETH-BTC",
) -> list[CaptureRecord]:
    endpoints = sim.endpoints[venue]
    stats = await record(
        RecordOptions(
            venue=venue,
            instrument=instrument,
            output=str(path),
            mode=mode,  # type: ignore[arg-type]
            ws_url=endpoints.ws_url,
            rest_url=endpoints.rest_url,
            count=count,
        )
    )
    assert stats.frames == count
    return list(read_capture(path).records)


def kinds(records: list[CaptureRecord], kind: RecordKind) -> list[CaptureRecord]:
    return [r for r in records if r.kind is kind]


async def test_recorder_captures_the_feed_conversation(tmp_path: Path) -> None:
    path = tmp_path / "binance.cap"
    async with running(venues=("binance",), rate=100.0) as sim:
        records = await record_from_sim(sim, "binance", path)
    assert records[0].kind is RecordKind.META
    assert b'"venue":"binance"' in records[0].payload
    assert kinds(records, RecordKind.CONNECT)[0].url == sim.endpoints["binance"].ws_url
    (sent,) = kinds(records, RecordKind.WS_OUT)
    assert b'"SUBSCRIBE"' in sent.payload and b"ethbtc@depth@100ms" in sent.payload
    received = kinds(records, RecordKind.WS_IN)
    assert len(received) == 40
    assert received[0].payload.startswith(b'{"result":null')
    times = [r.time_ns for r in received]
    assert times == sorted(times)
    (rest,) = kinds(records, RecordKind.REST)
    assert "/api/v3/depth?symbol=ETHBTC" in rest.url and rest.payload.startswith(b'{"lastUpdateId"')


async def test_the_capture_names_the_instrument_canonically(tmp_path: Path) -> None:
    path = tmp_path / "binance.cap"
    async with running(venues=("binance",), rate=100.0) as sim:
        records = await record_from_sim(sim, "binance", path, count=3, instrument="ethbtc")
    assert msgspec.json.decode(records[0].payload)["instrument"] == "ETH-BTC"


async def replay_client(
    sim: SimHandle, venue: str, capture: list[CaptureRecord], suffix: str = ""
) -> list[str]:
    """Connect to the replaying venue, send what the recorder sent, read as many frames."""
    expected = len(kinds(capture, RecordKind.WS_IN))
    async with trio_websocket.open_websocket_url(sim.endpoints[venue].ws_url + suffix) as ws:
        for sent in kinds(capture, RecordKind.WS_OUT):
            await ws.send_message(sent.payload.decode())
        return await receive_n(ws, expected)


async def test_replay_reproduces_recorded_frames_byte_for_byte(tmp_path: Path) -> None:
    for venue in ("binance", "bitstamp"):
        path = tmp_path / f"{venue}.cap"
        async with running(venues=(venue,), rate=200.0) as sim:
            capture = await record_from_sim(sim, venue, path)
        async with running(replay=(str(path),), as_fast_as_possible=True) as replay:
            assert replay.venues == (venue,)
            got = await replay_client(replay, venue, capture)
            assert got == [r.payload.decode() for r in kinds(capture, RecordKind.WS_IN)]
            (rest,) = kinds(capture, RecordKind.REST)
            target = rest.url.partition("//")[2].partition("/")[2]
            async with httpx.AsyncClient(base_url=replay.endpoints[venue].rest_url) as http:
                response = await http.get("/" + target)
            assert response.content == rest.payload


async def test_replay_keeps_the_recorded_pace_times_speed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "bitstamp.cap"
    async with running(venues=("bitstamp",), rate=20.0) as sim:
        capture = await record_from_sim(sim, "bitstamp", path, count=15)
    data = [r for r in kinds(capture, RecordKind.WS_IN) if b'"event":"data"' in r.payload]
    async with (
        running(replay=(str(path),), speed=4.0) as replay,
        trio_websocket.open_websocket_url(replay.endpoints["bitstamp"].ws_url) as ws,
    ):
        await ws.send_message(kinds(capture, RecordKind.WS_OUT)[0].payload.decode())
        await receive(ws)  # the ack, answered live
        times = []
        for _ in data:
            await receive(ws)
            times.append(trio.current_time())
    played = [b - a for a, b in itertools.pairwise(times)]
    recorded = [(b.time_ns - a.time_ns) / 4e9 for a, b in itertools.pairwise(data)]
    assert max(abs(p - r) for p, r in zip(played, recorded, strict=True)) < 1e-3
    assert sum(played) > 0


async def test_replay_rewraps_for_the_raw_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "partial.cap"
    async with running(venues=("binance",), rate=200.0) as sim:
        capture = await record_from_sim(sim, "binance", path, mode="top", count=12)
    wrapped = [r.payload for r in kinds(capture, RecordKind.WS_IN)][1:]  # after the ack
    async with running(replay=(str(path),), as_fast_as_possible=True) as replay:
        base = replay.endpoints["binance"].ws_url.removesuffix("/stream")
        async with trio_websocket.open_websocket_url(base + "/ws/ethbtc@depth20@100ms") as ws:
            raw = await receive_n(ws, len(wrapped))
    for text, original in zip(raw, wrapped, strict=True):
        assert original == b'{"stream":"ethbtc@depth20@100ms","data":' + text.encode() + b"}"
        msgspec.json.decode(text, type=PartialDepth)


async def test_recorded_binance_sample_served_and_read_back(samples_dir: Path) -> None:
    ws_file, http_file = samples_dir / "BINANCE.ws.1.0", samples_dir / "BINANCE.http.0.0"
    records = read_lines(ws_file)
    connect_url = kinds(records, RecordKind.CONNECT)[0].url
    recorded = [r.payload.decode() for r in kinds(records, RecordKind.WS_IN)]
    async with running(replay=(str(ws_file), str(http_file)), as_fast_as_possible=True) as sim:
        query = connect_url.partition("?")[2]
        async with trio_websocket.open_websocket_url(
            sim.endpoints["binance"].ws_url + "?" + query
        ) as ws:
            got = await receive_n(ws, len(recorded))
        assert got == recorded
        async with httpx.AsyncClient(base_url=sim.endpoints["binance"].rest_url) as http:
            for rest in read_lines(http_file):
                symbol = rest.url.partition("symbol=")[2].partition("&")[0]
                response = await http.get(f"/api/v3/depth?symbol={symbol}&limit=1000")
                first = next(r for r in read_lines(http_file) if f"symbol={symbol}&" in r.url)
                assert response.content == first.payload


async def test_recorded_bitstamp_sample_served_and_read_back(samples_dir: Path) -> None:
    ws_file, http_file = samples_dir / "BITSTAMP.ws.1.0", samples_dir / "BITSTAMP.http.0.0"
    records = read_lines(ws_file)
    sent = kinds(records, RecordKind.WS_OUT)
    received = [r.payload.decode() for r in kinds(records, RecordKind.WS_IN)]
    acks = [t for t in received if '"bts:subscription_succeeded"' in t]
    data = [t for t in received if t not in acks]
    async with running(replay=(str(ws_file), str(http_file)), as_fast_as_possible=True) as sim:
        async with trio_websocket.open_websocket_url(sim.endpoints["bitstamp"].ws_url) as ws:
            for frame in sent:
                await ws.send_message(frame.payload.decode())
            got = await receive_n(ws, len(acks) + len(data))
        assert sorted(got[: len(acks)]) == sorted(acks)  # answered live, same bytes
        assert got[len(acks) :] == data
        async with httpx.AsyncClient(base_url=sim.endpoints["bitstamp"].rest_url) as http:
            for rest in read_lines(http_file):
                pair = rest.url.rstrip("/").rpartition("/")[2]
                response = await http.get(f"/api/v2/order_book/{pair}/")
                assert response.status_code == 200
                assert response.content == rest.payload


async def test_fast_replay_sends_while_it_queues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An as-fast-as-possible replay checkpoints every ``_STEP`` frames, so the writer sends
    in batches of at most that many while the rest is queued, byte for byte as recorded."""
    path = tmp_path / "binance.cap"
    async with running(venues=("binance",), rate=200.0) as sim:
        capture = await record_from_sim(sim, "binance", path, count=40)
    batches: list[int] = []
    original = ws_lean._LeanSocket.send_many

    async def counting(self: ws_lean._LeanSocket, texts: Sequence[str]) -> None:
        batches.append(len(texts))
        await original(self, texts)

    monkeypatch.setattr(ws_lean._LeanSocket, "send_many", counting)
    monkeypatch.setattr(replay_module, "_STEP", 8)
    async with running(
        replay=(str(path),), as_fast_as_possible=True, ws_backend="wsproto", replay_settle=0.0
    ) as replay:
        got = await replay_client(replay, "binance", capture)
    assert got == [r.payload.decode() for r in kinds(capture, RecordKind.WS_IN)]
    assert sum(batches) == len(got) and len(batches) >= 4
    # A writer still busy with one batch may find two steps queued, never the whole
    # replay (all 39 data frames in one batch without the checkpoints).
    assert max(batches) <= 3 * 8
