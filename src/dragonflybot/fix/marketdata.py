"""FIX market data, sans-I/O: MarketDataRequest in, 35=W / 35=X / 35=Y bodies out.

Two book kinds, chosen by the custom tag ``DFBookType`` (5000) on a
MarketDataRequest (35=V):

- ``0`` (default), the BBO world view: the consolidated top N, one entry per
  venue level, MDMkt (275) naming the venue; the same levels, prices, amounts
  and venues as the gRPC ``Summary`` of the same state.
- ``1``, aggregated liquidity: one entry per price with the total across venues,
  the contributing venues in ``DFVenues`` (5002, space-separated).

Incremental refreshes (35=X) are computed as the difference between the entries
last sent to this client and the new ones: an entry is keyed by side, price and
venue (BBO) or side and price (ladder); MDUpdateAction 0 New / 1 Change /
2 Delete. Deletes come first, so a client can apply an X in order. A client that
fell behind (conflated) gets one X from what it has to what is current, never
the intermediate states.

The cost-to-trade query is a custom message pair: CostToTradeRequest (35=U1)
and CostToTradeReport (35=U2); docs/fix.md lists every tag.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple

import attrs

from dragonflybot.core import fixed
from dragonflybot.core.fixed import Fixed, to_str
from dragonflybot.core.liquidity import Ladder, TradeCost, TradeSide, format_number, format_ratio
from dragonflybot.core.merge import Consolidated
from dragonflybot.errors import DecodeError
from dragonflybot.fix.codec import Field, Message
from dragonflybot.fix.session import RejectReason
from dragonflybot.instrument import resolve_served

# Custom tags (user-defined range 5000-9999), documented in docs/fix.md.
TAG_BOOK_TYPE: Final = 5000
TAG_VENUES: Final = 5002
TAG_COST_STATUS: Final = 5101
TAG_AVAILABLE_QTY: Final = 5102
TAG_TAKEN_QTY: Final = 5103
TAG_WORST_PX: Final = 5104
TAG_MID_PX: Final = 5105
TAG_SLIPPAGE_PX: Final = 5106
TAG_SLIPPAGE_BPS: Final = 5107
TAG_NO_VENUE_FILLS: Final = 5108
TAG_VENUE_QTY: Final = 5109

COST_REQUEST: Final = "U1"
COST_REPORT: Final = "U2"
BID: Final = "0"
OFFER: Final = "1"

MAX_SUBSCRIPTIONS: Final = 64
"""Live subscriptions per FIX session; more is refused with MDReqRejReason 2."""


class BookKind(enum.Enum):
    BBO = "0"
    LADDER = "1"


class RejReason(enum.Enum):
    """MDReqRejReason (281) values used here."""

    UNKNOWN_SYMBOL = "0"
    DUPLICATE_MDREQID = "1"
    INSUFFICIENT_BANDWIDTH = "2"
    UNSUPPORTED_SUBSCRIPTION_TYPE = "4"
    UNSUPPORTED_MARKET_DEPTH = "5"
    UNSUPPORTED_UPDATE_TYPE = "6"
    UNSUPPORTED_BOOK = "7"
    UNSUPPORTED_ENTRY_TYPE = "8"


class MDRequestRejected(Exception):
    """Answer with MarketDataRequestReject (35=Y)."""

    def __init__(self, req_id: str, reason: RejReason | None, text: str) -> None:
        super().__init__(text)
        self.req_id = req_id
        self.reason = reason
        self.text = text


class FieldRejected(Exception):
    """Answer with a session-level Reject (35=3): the message itself is malformed."""

    def __init__(self, tag: int, reason: RejectReason, text: str) -> None:
        super().__init__(text)
        self.tag = tag
        self.reason = reason
        self.text = text


@attrs.frozen
class InstrumentInfo:
    """What a request is validated against: the depths each book kind has."""

    bbo_depth: int
    ladder_depth: int | None
    """``None`` when no liquidity aggregator runs for the instrument."""


class SubscriptionType(enum.Enum):
    SNAPSHOT = "0"
    SUBSCRIBE = "1"
    UNSUBSCRIBE = "2"


@attrs.frozen
class MDRequest:
    req_id: str
    kind: SubscriptionType
    symbol: str = ""
    """As the client spelled it (echoed in every answer)."""
    instrument: str = ""
    book: BookKind = BookKind.BBO
    depth: int = 0
    """Entries per side; the instrument's whole depth when the client asked for 0."""
    incremental: bool = False
    entry_types: frozenset[str] = frozenset((BID, OFFER))


@attrs.frozen
class CostRequest:
    req_id: str
    symbol: str
    instrument: str
    side: TradeSide
    quantity: Fixed


class Entry(NamedTuple):
    """One MDEntry: side type, price, size, and the venue(s) (``market``)."""

    type: str
    price: Fixed
    size: Fixed
    market: str


def _required(msg: Message, tag: int, name: str) -> str:
    value = msg.get(tag)
    if value is None or value == "":
        raise FieldRejected(tag, RejectReason.REQUIRED_TAG_MISSING, f"{name} ({tag}) missing")
    return value


def _symbol(msg: Message, req_id: str, served: Mapping[str, InstrumentInfo]) -> tuple[str, str]:
    count = msg.count(55)
    if count == 0:
        raise FieldRejected(55, RejectReason.REQUIRED_TAG_MISSING, "Symbol (55) missing")
    if count > 1:
        raise MDRequestRejected(req_id, None, "one Symbol per request")
    symbol = msg.get(55) or ""
    instrument = resolve_served(symbol, served)
    if instrument is None:
        raise MDRequestRejected(req_id, RejReason.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
    return symbol, instrument


def _number(msg: Message, tag: int, name: str) -> int | None:
    value = msg.get(tag)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise FieldRejected(tag, RejectReason.INCORRECT_DATA_FORMAT, f"{name} ({tag}) not a number")
    return int(value)


def parse_md_request(msg: Message, served: Mapping[str, InstrumentInfo]) -> MDRequest:
    """Validate a MarketDataRequest; raises ``FieldRejected`` or ``MDRequestRejected``."""
    req_id = _required(msg, 262, "MDReqID")
    sub_text = _required(msg, 263, "SubscriptionRequestType")
    try:
        kind = SubscriptionType(sub_text)
    except ValueError:
        raise MDRequestRejected(
            req_id,
            RejReason.UNSUPPORTED_SUBSCRIPTION_TYPE,
            f"SubscriptionRequestType {sub_text!r} is not 0, 1 or 2",
        ) from None
    if kind is SubscriptionType.UNSUBSCRIBE:
        return MDRequest(req_id, kind)
    depth = _number(msg, 264, "MarketDepth")
    if depth is None:
        raise FieldRejected(264, RejectReason.REQUIRED_TAG_MISSING, "MarketDepth (264) missing")
    update = msg.get(265)
    if kind is SubscriptionType.SUBSCRIBE and update not in ("0", "1"):
        raise MDRequestRejected(
            req_id,
            RejReason.UNSUPPORTED_UPDATE_TYPE,
            f"MDUpdateType (265) must be 0 or 1 for a subscription, got {update!r}",
        )
    entry_types = [value for tag, value in msg.fields if tag == 269]
    declared = _number(msg, 267, "NoMDEntryTypes")
    if declared is None or not entry_types:
        raise FieldRejected(
            267, RejectReason.REQUIRED_TAG_MISSING, "NoMDEntryTypes (267) with MDEntryType missing"
        )
    if declared != len(entry_types):
        raise FieldRejected(
            267,
            RejectReason.INCORRECT_NUM_IN_GROUP,
            f"NoMDEntryTypes says {declared}, {len(entry_types)} MDEntryType given",
        )
    for value in entry_types:
        if value not in (BID, OFFER):
            raise MDRequestRejected(
                req_id, RejReason.UNSUPPORTED_ENTRY_TYPE, f"MDEntryType {value!r}: only 0 and 1"
            )
    book_text = msg.get(TAG_BOOK_TYPE) or BookKind.BBO.value
    try:
        book = BookKind(book_text)
    except ValueError:
        raise MDRequestRejected(
            req_id, RejReason.UNSUPPORTED_BOOK, f"DFBookType (5000) {book_text!r} is not 0 or 1"
        ) from None
    symbol, instrument = _symbol(msg, req_id, served)
    info = served[instrument]
    available = info.bbo_depth if book is BookKind.BBO else info.ladder_depth
    if available is None:
        raise MDRequestRejected(
            req_id,
            RejReason.UNSUPPORTED_BOOK,
            f"aggregated liquidity is not configured for {symbol}",
        )
    if depth > available:
        raise MDRequestRejected(
            req_id,
            RejReason.UNSUPPORTED_MARKET_DEPTH,
            f"MarketDepth {depth}: at most {available} (0 = all)",
        )
    return MDRequest(
        req_id,
        kind,
        symbol,
        instrument,
        book,
        depth or available,
        update == "1",
        frozenset(entry_types),
    )


def parse_cost_request(msg: Message, served: Mapping[str, InstrumentInfo]) -> CostRequest:
    """Validate a CostToTradeRequest (35=U1)."""
    req_id = _required(msg, 262, "MDReqID")
    side_text = _required(msg, 54, "Side")
    qty_text = _required(msg, 38, "OrderQty")
    if side_text not in ("1", "2"):
        raise FieldRejected(54, RejectReason.VALUE_INCORRECT, "Side (54) must be 1 or 2")
    try:
        quantity = fixed.parse(qty_text)
    except DecodeError:
        raise FieldRejected(
            38, RejectReason.INCORRECT_DATA_FORMAT, "OrderQty (38) not a decimal"
        ) from None
    if quantity <= 0:
        raise FieldRejected(38, RejectReason.VALUE_INCORRECT, "OrderQty (38) must be > 0")
    symbol, instrument = _symbol(msg, req_id, served)
    if served[instrument].ladder_depth is None:
        raise MDRequestRejected(
            req_id,
            RejReason.UNSUPPORTED_BOOK,
            f"aggregated liquidity is not configured for {symbol}",
        )
    side = TradeSide.BUY if side_text == "1" else TradeSide.SELL
    return CostRequest(req_id, symbol, instrument, side, quantity)


# --- entries ---------------------------------------------------------------------------------


def bbo_entries(book: Consolidated, req: MDRequest) -> tuple[Entry, ...]:
    """The BBO world view's top ``req.depth`` per requested side, best first."""
    out: list[Entry] = []
    if BID in req.entry_types:
        out += [Entry(BID, lv.price, lv.amount, lv.venue) for lv in book.bids[: req.depth]]
    if OFFER in req.entry_types:
        out += [Entry(OFFER, lv.price, lv.amount, lv.venue) for lv in book.asks[: req.depth]]
    return tuple(out)


def ladder_entries(ladder: Ladder, req: MDRequest) -> tuple[Entry, ...]:
    """The ladder's top ``req.depth`` prices per requested side, best first."""
    out: list[Entry] = []
    for entry_type, levels in ((BID, ladder.bids), (OFFER, ladder.asks)):
        if entry_type in req.entry_types:
            out += [
                Entry(entry_type, lv.price, lv.amount, " ".join(v.venue for v in lv.venues))
                for lv in levels[: req.depth]
            ]
    return tuple(out)


def _market_tag(req: MDRequest) -> int:
    return 275 if req.book is BookKind.BBO else TAG_VENUES


def snapshot_body(req: MDRequest, entries: Sequence[Entry]) -> list[Field]:
    """MarketDataSnapshotFullRefresh (35=W): every entry, MDEntryPositionNo per side."""
    market = _market_tag(req)
    body: list[Field] = [(262, req.req_id), (55, req.symbol), (268, str(len(entries)))]
    position = {BID: 0, OFFER: 0}
    for entry in entries:
        position[entry.type] += 1
        body += [
            (269, entry.type),
            (270, to_str(entry.price)),
            (271, to_str(entry.size)),
            (market, entry.market),
            (290, str(position[entry.type])),
        ]
    return body


def _key(req: MDRequest, entry: Entry) -> tuple[str, Fixed, str]:
    return (entry.type, entry.price, entry.market if req.book is BookKind.BBO else "")


def incremental_body(
    req: MDRequest, old: Sequence[Entry], new: Sequence[Entry]
) -> list[Field] | None:
    """MarketDataIncrementalRefresh (35=X) from ``old`` to ``new``; ``None`` if equal."""
    before = {_key(req, e): e for e in old}
    after = {_key(req, e): e for e in new}
    deletes = [e for k, e in before.items() if k not in after]
    changes = [e for k, e in after.items() if k in before and before[k] != e]
    news = [e for k, e in after.items() if k not in before]
    if not (deletes or changes or news):
        return None
    market = _market_tag(req)
    body: list[Field] = [(262, req.req_id), (268, str(len(deletes) + len(changes) + len(news)))]
    for action, entries in (("2", deletes), ("1", changes), ("0", news)):
        for entry in entries:
            body += [(279, action), (269, entry.type), (55, req.symbol), (270, to_str(entry.price))]
            if action != "2":
                body.append((271, to_str(entry.size)))
            body.append((market, entry.market))
    return body


def apply_incremental(
    book: BookKind, entries: Iterable[Entry], changes: Iterable[tuple[str, Entry]]
) -> tuple[Entry, ...]:
    """What a client holds after applying ``(action, entry)`` changes, ordered as sent.

    The reference for tests and for clients: sides best first, then the merge's
    tie rule (larger size, then venue name).
    """
    held: dict[tuple[str, Fixed, str], Entry] = {}
    for e in entries:
        held[(e.type, e.price, e.market if book is BookKind.BBO else "")] = e
    for action, e in changes:
        key = (e.type, e.price, e.market if book is BookKind.BBO else "")
        if action == "2":
            held.pop(key, None)
        else:
            held[key] = e
    bids = sorted(
        (e for e in held.values() if e.type == BID), key=lambda e: (-e.price, -e.size, e.market)
    )
    asks = sorted(
        (e for e in held.values() if e.type == OFFER), key=lambda e: (e.price, -e.size, e.market)
    )
    return tuple(bids + asks)


def reject_body(req_id: str, reason: RejReason | None, text: str) -> list[Field]:
    """MarketDataRequestReject (35=Y)."""
    body: list[Field] = [(262, req_id)]
    if reason is not None:
        body.append((281, reason.value))
    body.append((58, text))
    return body


def cost_report_body(req: CostRequest, cost: TradeCost) -> list[Field]:
    """CostToTradeReport (35=U2): the figures of ``core.liquidity.TradeCost``."""
    body: list[Field] = [
        (262, req.req_id),
        (55, req.symbol),
        (54, "1" if req.side is TradeSide.BUY else "2"),
        (38, to_str(req.quantity)),
        (TAG_COST_STATUS, "0" if cost.filled else "1"),
        (TAG_AVAILABLE_QTY, to_str(cost.available)),
        (TAG_TAKEN_QTY, to_str(cost.taken)),
    ]
    if cost.vwap is not None:
        body.append((6, format_ratio(cost.vwap)))
    if cost.worst_price is not None:
        body.append((TAG_WORST_PX, to_str(cost.worst_price)))
    if cost.mid is not None:
        body.append((TAG_MID_PX, format_ratio(cost.mid)))
    slippage = cost.slippage
    if slippage is not None:
        body.append((TAG_SLIPPAGE_PX, format_ratio(slippage)))
    bps = cost.slippage_bps
    if bps is not None:
        body.append((TAG_SLIPPAGE_BPS, format_number(bps)))
    body.append((TAG_NO_VENUE_FILLS, str(len(cost.by_venue))))
    for venue, amount in cost.by_venue:
        body += [(275, venue), (TAG_VENUE_QTY, to_str(amount))]
    return body
