"""Coinbase and Bybit recorded from their simulated venues, then served back by replay.

The recorder keeps the subscription's conversation (sent requests, acks, the stream's
snapshot, updates, Coinbase's heartbeats); replay answers the requests live (Coinbase
numbers each connection's messages itself) and plays the rest, so a fresh protocol fed
the replayed frames builds the recorded book without a single gap.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import trio_websocket

from dragonflybot.config import VenueConfig
from dragonflybot.sim.capture import RecordKind
from dragonflybot.venues.base import BookChanged, BookReset, Skipped
from dragonflybot.venues.registry import create_protocol

from .conftest import receive_n, running
from .test_sim_replay import kinds, record_from_sim


@pytest.mark.parametrize("venue", ["coinbase", "bybit"])
async def test_a_recorded_stream_venue_replays_into_the_same_book(
    venue: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{venue}.cap"
    async with running(venues=(venue,), rate=200.0) as sim:
        capture = await record_from_sim(sim, venue, path, count=60)
    recorded = [r.payload.decode() for r in kinds(capture, RecordKind.WS_IN)]
    sent = [r.payload.decode() for r in kinds(capture, RecordKind.WS_OUT)]
    assert not kinds(capture, RecordKind.REST)  # the book came on the stream

    def book_of(frames: list[str]) -> tuple[object, object]:
        protocol = create_protocol(VenueConfig(name=venue, mode="depth"), "ETH-BTC")
        protocol.connection_made()
        events = [e for f in frames for e in protocol.receive(f)]
        assert not [e for e in events if isinstance(e, BookReset | Skipped)]
        assert any(isinstance(e, BookChanged) for e in events) and protocol.has_book
        return protocol.top(10)

    want = book_of(recorded)
    async with running(replay=(str(path),), as_fast_as_possible=True) as replay:
        assert replay.venues == (venue,)
        async with trio_websocket.open_websocket_url(replay.endpoints[venue].ws_url) as ws:
            for text in sent:
                await ws.send_message(text)
            got = await receive_n(ws, len(recorded))
    assert book_of(got) == want


def test_coinbase_numbering_keeps_a_send_stamp_valid() -> None:
    from dragonflybot.sim.coinbase_venue import CoinbaseProtocol, CoinbaseSession, renumbered
    from dragonflybot.sim.frames import FrameKind, Outgoing, stamped

    recorded = '{"channel":"l2_data","sequence_num":7,"events":[]}'
    text = renumbered(recorded)
    protocol = CoinbaseProtocol({})
    session = CoinbaseSession()
    for n, stamp_at in enumerate((len(text) - 1, -1)):
        frame = protocol.number(session, Outgoing(text, FrameKind.DIFF, stamp_at))
        sent = msgspec.json.decode(stamped(frame, 123))
        assert sent["sequence_num"] == n and sent["events"] == []
        assert sent.get("T_send_ns") == (123 if stamp_at >= 0 else None)


def test_renumbering_an_unnumbered_or_numbered_message_leaves_one_number() -> None:
    from dragonflybot.sim.coinbase_venue import UNNUMBERED, renumbered

    for text in (
        '{"channel":"l2_data","events":[]' + UNNUMBERED,
        '{"channel":"l2_data","sequence_num":12,"events":[]}',
        '{"sequence_num":12,"channel":"l2_data","events":[]}',
    ):
        out = renumbered(text)
        assert out.endswith(UNNUMBERED) and out.count("sequence_num") == 1
