"""The simulated venues' control protocols, sans-I/O, decoded with the feeds' Structs."""

from __future__ import annotations

import msgspec
import pytest

from dragonflybot.sim.binance_venue import BinanceProtocol, BinanceSession, depth_streams
from dragonflybot.sim.bitstamp_venue import BitstampProtocol, book_channels
from dragonflybot.sim.faults import NO_FAULTS, Faults
from dragonflybot.sim.frames import FrameKind, Outgoing
from dragonflybot.sim.instruments import instrument_spec
from dragonflybot.sim.protocol import Rejection, Session
from dragonflybot.venues.binance import CommandError, CommandResult
from dragonflybot.venues.bitstamp import Envelope, ErrorData

SPEC = instrument_spec("ethbtc")
REJECT = Faults(reject_subscriptions=True)


@pytest.fixture
def binance() -> BinanceProtocol:
    return BinanceProtocol(depth_streams(SPEC))


@pytest.fixture
def bitstamp() -> BitstampProtocol:
    return BitstampProtocol(book_channels(SPEC))


def test_binance_urls(binance: BinanceProtocol) -> None:
    opened = binance.open("/stream?streams=ethbtc@depth@100ms/ethbtc@depth20@100ms")
    assert not isinstance(opened, Rejection)
    session, keys = opened
    assert isinstance(session, BinanceSession) and session.combined
    assert keys == [("ethbtc@depth@100ms", "combined"), ("ethbtc@depth20@100ms", "combined")]
    raw = binance.open("/ws/ethbtc@depth5")
    assert not isinstance(raw, Rejection)
    assert raw[1] == [("ethbtc@depth5", "raw")]
    assert binance.open("/stream?streams=btcusdt@depth") == Rejection(
        400, "Invalid request: unknown stream 'btcusdt@depth'"
    )
    assert isinstance(binance.open("/api/v3/depth"), Rejection)


def test_binance_subscribe_ack_and_errors(binance: BinanceProtocol) -> None:
    session = BinanceSession(combined=True)
    ok = binance.on_text(
        session, '{"method":"SUBSCRIBE","params":["ethbtc@depth@100ms"],"id":7}', NO_FAULTS
    )
    assert ok.replies == ['{"result":null,"id":7}']
    assert msgspec.json.decode(ok.replies[0], type=CommandResult) == CommandResult(
        id=7, result=None
    )
    assert ok.subscribe == [("ethbtc@depth@100ms", "combined")]

    unknown = binance.on_text(
        session, '{"method":"SUBSCRIBE","params":["xyz@depth"],"id":8}', NO_FAULTS
    )
    err = msgspec.json.decode(unknown.replies[0], type=CommandError)
    assert err.code == 2 and err.id == 8 and "xyz@depth" in err.msg
    assert unknown.subscribe == []

    refused = binance.on_text(
        session, '{"method":"SUBSCRIBE","params":["ethbtc@depth"],"id":9}', REJECT
    )
    assert msgspec.json.decode(refused.replies[0], type=CommandError).id == 9
    assert refused.subscribe == []

    bad_json = binance.on_text(session, '{"method":', NO_FAULTS)
    assert msgspec.json.decode(bad_json.replies[0], type=CommandError).code == 3
    bad_method = binance.on_text(session, '{"method":"FLY","id":1}', NO_FAULTS)
    assert msgspec.json.decode(bad_method.replies[0], type=CommandError).code == 2
    bad_id = binance.on_text(session, '{"method":"SUBSCRIBE","params":[],"id":[1]}', NO_FAULTS)
    assert msgspec.json.decode(bad_id.replies[0], type=CommandError).code == 2


def test_binance_unsubscribe_list_and_combined_property(binance: BinanceProtocol) -> None:
    session = BinanceSession(combined=False)
    session.keys[("ethbtc@depth", "raw")] = None
    listed = binance.on_text(session, '{"method":"LIST_SUBSCRIPTIONS","id":"a1"}', NO_FAULTS)
    assert listed.replies == ['{"result":["ethbtc@depth"],"id":"a1"}']
    switched = binance.on_text(
        session, '{"method":"SET_PROPERTY","params":["combined",true],"id":2}', NO_FAULTS
    )
    assert switched.unsubscribe == [("ethbtc@depth", "raw")]
    assert switched.subscribe == [("ethbtc@depth", "combined")]
    assert session.combined
    got = binance.on_text(
        session, '{"method":"GET_PROPERTY","params":["combined"],"id":3}', NO_FAULTS
    )
    assert got.replies == ['{"result":true,"id":3}']
    gone = binance.on_text(
        session, '{"method":"UNSUBSCRIBE","params":["ethbtc@depth"],"id":4}', NO_FAULTS
    )
    assert gone.unsubscribe == [("ethbtc@depth", "combined")]


def test_binance_wrapping_and_notice(binance: BinanceProtocol) -> None:
    text, at = binance.wrap(("ethbtc@depth", "combined"), '{"a":1}')
    assert text == '{"stream":"ethbtc@depth","data":{"a":1}}' and text[at] == "}"
    assert at == len(text) - 2
    combined, raw = BinanceSession(True), BinanceSession(False)
    assert binance.reconnect_notice(combined, 5) == (
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":5}}'
    )
    assert binance.reconnect_notice(raw, 5) == '{"e":"serverShutdown","E":5}'


def test_bitstamp_control(bitstamp: BitstampProtocol) -> None:
    session = Session()
    assert isinstance(bitstamp.open("/nope"), Rejection)
    sub = '{"event":"bts:subscribe","data":{"channel":"diff_order_book_ethbtc"}}'
    ok = bitstamp.on_text(session, sub, NO_FAULTS)
    assert ok.replies == [
        '{"event":"bts:subscription_succeeded","channel":"diff_order_book_ethbtc","data":{}}'
    ]
    assert ok.subscribe == [("diff_order_book_ethbtc", "")]
    beat = bitstamp.on_text(session, '{"event":"bts:heartbeat"}', NO_FAULTS)
    assert beat.replies == ['{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}']
    for text, faults in [
        ('{"event":"bts:subscribe","data":{"channel":"order_book_btcusd"}}', NO_FAULTS),
        (sub, REJECT),
        ("not json", NO_FAULTS),
    ]:
        reaction = bitstamp.on_text(session, text, faults)
        envelope = msgspec.json.decode(reaction.replies[0], type=Envelope)
        assert envelope.event == "bts:error" and envelope.channel == ""
        assert msgspec.json.decode(envelope.data, type=ErrorData).message
        assert reaction.subscribe == []
    unsub = '{"event":"bts:unsubscribe","data":{"channel":"diff_order_book_ethbtc"}}'
    assert bitstamp.on_text(session, unsub, NO_FAULTS).unsubscribe == [
        ("diff_order_book_ethbtc", "")
    ]


def test_garbage_variants(bitstamp: BitstampProtocol) -> None:
    session = Session()
    key = ("diff_order_book_ethbtc", "")
    session.keys[key] = None
    text, at = bitstamp.wrap(
        key, '{"timestamp":"1","microtimestamp":"1000000","bids":[["0.05","1.0"]],"asks":[]}'
    )
    frame = Outgoing(text, FrameKind.DIFF, at, "ethbtc", key[0])
    bad_json = bitstamp.garbage(session, 0, frame)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(bad_json)
    wrong = msgspec.json.decode(bitstamp.garbage(session, 1, frame))
    assert wrong["channel"] == key[0] and not isinstance(wrong["data"]["bids"], list)
    negative = msgspec.json.decode(bitstamp.garbage(session, 2, frame))
    assert negative["data"]["bids"][0][0] == "-0.05"
