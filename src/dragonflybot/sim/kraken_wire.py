"""Kraken v2 frames as the venue writes them, for a simulated Kraken (pure builders, no I/O).

``KrakenBookWire`` is the venue's side of one pair's ``book`` subscription: it holds
the book it has published (cut to the subscribed depth, as Kraken keeps it) and
writes the ``snapshot`` and ``update`` messages with the checksum computed by the
very function the client verifies with (``venues.kraken_checksum``), over values
formatted with the pair's precision. ``corrupt=True`` writes a wrong checksum, the
fault a simulated venue injects. The other builders write the control frames
(acks, errors, instrument data, heartbeat, pong) in the shapes ``venues.kraken``
decodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from dragonflybot.core.book import PriceAmount
from dragonflybot.core.fixed import Fixed, to_str
from dragonflybot.venues import kraken, kraken_checksum

_encoder: Final = msgspec.json.Encoder()


def rfc3339(time_ms: int) -> str:
    """Unix milliseconds as Kraken's RFC 3339 timestamp (microseconds, ``Z``)."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _levels(levels: Iterable[PriceAmount]) -> str:
    # JSON numbers in their shortest exact form, as Kraken prints them.
    return ",".join(f'{{"price":{to_str(p)},"qty":{to_str(q)}}}' for p, q in levels)


def book_message(
    kind: str,
    symbol: str,
    bids: Iterable[PriceAmount],
    asks: Iterable[PriceAmount],
    checksum: int,
    time_ms: int | None = None,
) -> str:
    """A ``book`` message for one symbol (``kind``: ``snapshot`` or ``update``)."""
    stamp = f',"timestamp":"{rfc3339(time_ms)}"' if time_ms is not None else ""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{_encoder.encode(symbol).decode()},'
        f'"bids":[{_levels(bids)}],"asks":[{_levels(asks)}],"checksum":{checksum}{stamp}}}]}}'
    )


def checksum_of(
    bids: Sequence[PriceAmount],
    asks: Sequence[PriceAmount],
    price_precision: int,
    qty_precision: int,
) -> int:
    """The checksum of a book given best first (only its best 10 count)."""
    pu = kraken_checksum.scale_unit(price_precision)
    qu = kraken_checksum.scale_unit(qty_precision)
    n = kraken_checksum.LEVELS
    return kraken_checksum.checksum(
        [kraken_checksum.v2_token(p, q, pu, qu) for p, q in asks[:n]],
        [kraken_checksum.v2_token(p, q, pu, qu) for p, q in bids[:n]],
    )


class KrakenBookWire:
    """One pair's book as the simulated venue publishes it."""

    def __init__(
        self,
        symbol: str,
        *,
        depth: int = kraken.DEFAULT_DEPTH,
        price_precision: int,
        qty_precision: int,
    ) -> None:
        self.symbol = symbol
        self.depth = depth
        self.price_precision = price_precision
        self.qty_precision = qty_precision
        self.bids: dict[Fixed, Fixed] = {}
        self.asks: dict[Fixed, Fixed] = {}

    def top_bids(self) -> list[PriceAmount]:
        """The published bids, best first (at most ``depth``)."""
        return sorted(self.bids.items(), reverse=True)[: self.depth]

    def top_asks(self) -> list[PriceAmount]:
        return sorted(self.asks.items())[: self.depth]

    def checksum(self) -> int:
        return checksum_of(
            self.top_bids(), self.top_asks(), self.price_precision, self.qty_precision
        )

    def _truncate(self) -> None:
        self.bids = dict(self.top_bids())
        self.asks = dict(self.top_asks())

    def _stamp(self, corrupt: bool) -> int:
        value = self.checksum()
        return (value + 1) & 0xFFFFFFFF if corrupt else value

    def snapshot(
        self,
        bids: Iterable[PriceAmount],
        asks: Iterable[PriceAmount],
        *,
        corrupt: bool = False,
        time_ms: int | None = None,
    ) -> str:
        """Replace the book and write it (its best ``depth`` levels per side)."""
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self._truncate()
        return book_message(
            "snapshot",
            self.symbol,
            self.top_bids(),
            self.top_asks(),
            self._stamp(corrupt),
            time_ms,
        )

    def update(
        self,
        bids: Sequence[PriceAmount],
        asks: Sequence[PriceAmount],
        *,
        corrupt: bool = False,
        time_ms: int | None = None,
    ) -> str:
        """Apply absolute changes (quantity zero removes), cut to depth, write the update.

        Like Kraken, levels pushed out of the depth are dropped without a delete.
        """
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, qty in changes:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self._truncate()
        return book_message("update", self.symbol, bids, asks, self._stamp(corrupt), time_ms)


def subscribe_ack(
    req_id: int, channel: str, symbol: str | None = None, depth: int | None = None
) -> str:
    result: dict[str, object] = {"channel": channel}
    if symbol is not None:
        result["symbol"] = symbol
    if depth is not None:
        result["depth"] = depth
    result["snapshot"] = True
    reply = {
        "method": "subscribe",
        "result": result,
        "success": True,
        "time_in": "2026-11-29T00:00:00.000000Z",
        "time_out": "2026-11-29T00:00:00.000100Z",
        "req_id": req_id,
    }
    return _encoder.encode(reply).decode()


def unsubscribe_ack(req_id: int, symbol: str, depth: int) -> str:
    reply = {
        "method": "unsubscribe",
        "result": {"channel": "book", "symbol": symbol, "depth": depth},
        "success": True,
        "req_id": req_id,
    }
    return _encoder.encode(reply).decode()


def error_reply(method: str, req_id: int, error: str) -> str:
    reply = {"method": method, "success": False, "error": error, "req_id": req_id}
    return _encoder.encode(reply).decode()


def instrument_snapshot(pairs: Iterable[tuple[str, int, int]], kind: str = "snapshot") -> str:
    """``instrument`` data listing ``(symbol, price_precision, qty_precision)`` pairs."""
    listed = [
        {
            "symbol": symbol,
            "base": symbol.split("/")[0],
            "quote": symbol.split("/")[-1],
            "status": "online",
            "price_precision": pp,
            "qty_precision": qp,
            "price_increment": to_str(kraken_checksum.scale_unit(pp)),
            "qty_increment": to_str(kraken_checksum.scale_unit(qp)),
        }
        for symbol, pp, qp in pairs
    ]
    message = {"channel": "instrument", "type": kind, "data": {"assets": [], "pairs": listed}}
    return _encoder.encode(message).decode()


def heartbeat() -> str:
    return '{"channel":"heartbeat"}'


def status() -> str:
    return (
        '{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online",'
        '"api_version":"v2","connection_id":1}]}'
    )


def pong(req_id: int | None = None) -> str:
    if req_id is None:
        return '{"method":"pong"}'
    return f'{{"method":"pong","req_id":{req_id}}}'
