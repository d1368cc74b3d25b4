"""OKX v5 ``books`` frames as the venue writes them, for a simulated OKX (pure builders).

``OkxBookWire`` is the venue's side of one instrument's ``books`` subscription: it
holds the published book with the exact strings it sent for each level (the
checksum is over those), numbers the messages with ``seqId``/``prevSeqId`` as OKX
does (snapshot ``prevSeqId = -1``; each message's ``prevSeqId`` is the previous
``seqId``; a keepalive repeats its ``seqId``; a maintenance restart goes backwards)
and computes ``checksum`` with the very function the client verifies with
(``venues.okx_checksum``). Fault knobs: ``corrupt`` (wrong checksum) and ``gap``
(a message lost before this one). ``checksum=False`` writes ``0`` as OKX does since
June 2026; ``sequenced=False`` omits the ids as OKX did in 2022.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from dragonflybot.core.book import PriceAmount
from dragonflybot.core.fixed import Fixed, parse, to_str
from dragonflybot.venues import okx, okx_checksum

_encoder: Final = msgspec.json.Encoder()


class OkxBookWire:
    """One instrument's ``books`` as the simulated venue publishes it."""

    def __init__(
        self,
        inst_id: str,
        *,
        checksum: bool = True,
        sequenced: bool = True,
        first_seq: int = 1000,
        step: int = 3,
    ) -> None:
        self.inst_id = inst_id
        self.with_checksum = checksum
        self.sequenced = sequenced
        self.step = step
        self.seq = first_seq
        """The ``seqId`` of the last message written."""
        self._next_seq: int | None = None
        self.bids: dict[Fixed, tuple[str, str]] = {}
        """Price -> the (price, size) strings last sent."""
        self.asks: dict[Fixed, tuple[str, str]] = {}

    def top_bids(self, n: int = 400) -> list[PriceAmount]:
        return [(p, _size(self.bids[p])) for p in sorted(self.bids, reverse=True)[:n]]

    def top_asks(self, n: int = 400) -> list[PriceAmount]:
        return [(p, _size(self.asks[p])) for p in sorted(self.asks)[:n]]

    def checksum(self) -> int:
        n = okx_checksum.LEVELS
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:n]]
        asks = [self.asks[p] for p in sorted(self.asks)[:n]]
        return okx_checksum.checksum(
            [okx_checksum.level_text(*b) for b in bids],
            [okx_checksum.level_text(*a) for a in asks],
        )

    def restart(self, seq: int) -> None:
        """The next message starts a new sequence at ``seq`` (a maintenance restart)."""
        self._next_seq = seq

    def snapshot(
        self,
        bids: Iterable[PriceAmount],
        asks: Iterable[PriceAmount],
        *,
        corrupt: bool = False,
        ts_ms: int = 1_700_000_000_000,
    ) -> str:
        self.bids = {}
        self.asks = {}
        wire_bids = _set(self.bids, bids)
        wire_asks = _set(self.asks, asks)
        self.seq = self._advance()
        return self._message("snapshot", wire_bids, wire_asks, corrupt, ts_ms, -1, self.seq)

    def update(
        self,
        bids: Sequence[PriceAmount],
        asks: Sequence[PriceAmount],
        *,
        corrupt: bool = False,
        gap: bool = False,
        ts_ms: int = 1_700_000_000_000,
    ) -> str:
        """Apply absolute changes (size zero removes) and write the update.

        ``gap``: a message was lost just before this one (its ``prevSeqId`` is not
        the last ``seqId`` the client saw).
        """
        wire_bids = _set(self.bids, bids)
        wire_asks = _set(self.asks, asks)
        if gap:
            self.seq += self.step
        prev = self.seq
        self.seq = self._advance()
        return self._message("update", wire_bids, wire_asks, corrupt, ts_ms, prev, self.seq)

    def current_snapshot(self, *, ts_ms: int = 1_700_000_000_000) -> str:
        """The book held now as a ``snapshot`` at the current ``seqId`` (what a new
        subscriber gets while others go on with the same sequence)."""
        bids = [[*self.bids[p], "0", "1"] for p in sorted(self.bids, reverse=True)]
        asks = [[*self.asks[p], "0", "1"] for p in sorted(self.asks)]
        return self._message("snapshot", bids, asks, False, ts_ms, -1, self.seq)

    def keepalive(self, *, ts_ms: int = 1_700_000_000_000) -> str:
        """The empty update OKX sends after about 60 s without changes: ``prevSeqId == seqId``."""
        return self._message("update", [], [], False, ts_ms, self.seq, self.seq)

    def _advance(self) -> int:
        if self._next_seq is not None:
            seq, self._next_seq = self._next_seq, None
            return seq
        return self.seq + self.step

    def _message(
        self,
        action: str,
        bids: list[list[str]],
        asks: list[list[str]],
        corrupt: bool,
        ts_ms: int,
        prev: int,
        seq: int,
    ) -> str:
        value = self.checksum() if self.with_checksum else 0
        if corrupt:
            value = okx_checksum.to_signed((value + 1) & 0xFFFFFFFF) or 1
        data: dict[str, object] = {"asks": asks, "bids": bids, "ts": str(ts_ms), "checksum": value}
        if self.sequenced:
            data["prevSeqId"] = prev
            data["seqId"] = seq
        message: dict[str, object] = {
            "arg": {"channel": okx.CHANNEL, "instId": self.inst_id},
            "action": action,
            "data": [data],
        }
        return _encoder.encode(message).decode()


def _size(texts: tuple[str, str]) -> Fixed:
    return parse(texts[1])


def _set(side: dict[Fixed, tuple[str, str]], changes: Iterable[PriceAmount]) -> list[list[str]]:
    """Apply changes to ``side``; the wire levels ``[price, size, "0", orders]`` written."""
    wire: list[list[str]] = []
    for price, size in changes:
        texts = (to_str(price), to_str(size))
        if size:
            side[price] = texts
        else:
            side.pop(price, None)
        wire.append([texts[0], texts[1], "0", "1" if size else "0"])
    return wire


def subscribe_ack(inst_id: str, conn_id: str = "a4d3ae55") -> str:
    reply = {"event": "subscribe", "arg": {"channel": okx.CHANNEL, "instId": inst_id}}
    reply["connId"] = conn_id
    return _encoder.encode(reply).decode()


def unsubscribe_ack(inst_id: str) -> str:
    reply = {"event": "unsubscribe", "arg": {"channel": okx.CHANNEL, "instId": inst_id}}
    return _encoder.encode(reply).decode()


def error_reply(code: str, msg: str) -> str:
    return _encoder.encode(
        {"event": "error", "code": code, "msg": msg, "connId": "a4d3ae55"}
    ).decode()


def pong() -> str:
    return okx.PONG
