"""Small builders shared by the bus tests."""

from __future__ import annotations

from dragonflybot.bus.codec import DownMsg, ViewMsg, wire_levels
from dragonflybot.core.fixed import parse


def view_msg(venue: str = "binance", instrument: str = "BTC-USDT", bid: str = "100.5") -> ViewMsg:
    bids = wire_levels([(parse(bid), parse("1.25")), (parse(bid) - parse("0.5"), parse("2"))])
    asks = wire_levels([(parse(bid) + parse("0.5"), parse("3"))])
    return ViewMsg(venue, instrument, bids, asks, 42, 1_700_000_000_000, 1_700_000_000_000_000_000)


def down_msg(venue: str = "binance", instrument: str = "BTC-USDT") -> DownMsg:
    return DownMsg(venue, instrument, "disconnected")
