"""The vocabulary shared by every sans-I/O venue protocol: its events and its interface.

A protocol object is fed bytes (``receive``) and REST bodies (``snapshot_received``)
and answers with events; it never touches a socket, a clock or a logger. That keeps
the sync rules — the part that must be exactly right — testable by replaying
recorded frames, and lets the trio tasks in ``dragonflybot.feed`` stay thin.

Untrusted input never escapes as an exception: a frame that does not decode, has
wrong types or a bad number becomes ``Skipped`` and leaves the book untouched,
because every message is validated in full before any of its levels is applied.
"""

from __future__ import annotations

import abc
from typing import Final

import attrs
import msgspec

from dragonflybot.config import Mode
from dragonflybot.core.book import PriceAmount, Side
from dragonflybot.core.fixed import Fixed, parse
from dragonflybot.errors import ConfigError, DecodeError

RawLevels = list[tuple[str, str]]
"""``[[price, amount], ...]`` as both venues send them: decimal strings."""

BAD_INPUT = (msgspec.DecodeError, DecodeError, ValueError)
"""What decoding/validating untrusted input may raise (msgspec's ValidationError included)."""


# --- events -------------------------------------------------------------------------------
# Frozen msgspec Structs: a protocol builds one or more per frame, and a Struct is built
# in C, far cheaper than an attrs class's generated ``__init__`` (docs/performance.md).


class SendText(msgspec.Struct, frozen=True):
    """Send this text frame to the venue (subscribe requests)."""

    text: str


class FetchSnapshot(msgspec.Struct, frozen=True):
    """Fetch a REST book snapshot after ``delay`` seconds, then hand the body back.

    ``token`` identifies the request: a body answering an older request (one the
    protocol has since given up on) is ignored, so a slow response can never
    install a book the sync rules already rejected.
    """

    url: str
    params: tuple[tuple[str, str], ...]
    token: int
    delay: float


class Subscribed(msgspec.Struct, frozen=True):
    """Every stream of this protocol was acknowledged by the venue."""

    streams: tuple[str, ...]


class SubscriptionRejected(msgspec.Struct, frozen=True):
    """The venue refused a subscription (bad symbol, bad request)."""

    stream: str
    message: str


class BookChanged(msgspec.Struct, frozen=True):
    """Levels were applied; the top N may have moved.

    ``event_time_ms`` is the venue's own time for the newest applied message,
    where the venue sends one.
    """

    event_time_ms: int | None


class BookReset(msgspec.Struct, frozen=True):
    """The book was discarded (sequence gap, buffer overflow): not valid until resynced."""

    reason: str
    gap: bool


class Dropped(msgspec.Struct, frozen=True):
    """Well-formed book messages not applied by the sync rules (older than the book)."""

    count: int
    reason: str


class Skipped(msgspec.Struct, frozen=True):
    """A malformed frame or body: nothing of it was applied."""

    reason: str


class Ignored(msgspec.Struct, frozen=True):
    """A well-formed frame that is not for this feed (another stream, a heartbeat reply)."""

    reason: str


class ReconnectNow(msgspec.Struct, frozen=True):
    """The venue asked us to reconnect (maintenance, shutdown of this server)."""

    reason: str


class Resubscribe(msgspec.Struct, frozen=True):
    """Resubscribe this protocol's book on the open connection: send ``frames`` in order
    (the unsubscribe, then the subscribe).

    For a venue whose snapshot comes on the stream (Kraken, OKX), this is how a book that
    failed its integrity check (checksum, sequence chain) is rebuilt: only that symbol,
    never the connection. Always preceded by a ``BookReset``, so the venue is already out
    of the consolidated book. A venue that refuses the resubscription answers with an
    error, which its protocol turns into ``ReconnectNow``.
    """

    reason: str
    frames: tuple[str, ...]


class VenueNotice(msgspec.Struct, frozen=True):
    """The venue reported an error that is not about a pending subscription."""

    message: str


Event = (
    SendText
    | FetchSnapshot
    | Subscribed
    | SubscriptionRejected
    | BookChanged
    | BookReset
    | Dropped
    | Skipped
    | Ignored
    | ReconnectNow
    | Resubscribe
    | VenueNotice
)


@attrs.define
class SyncCounters:
    """Plain counters kept by a protocol over its whole life (across reconnects)."""

    applied: int = 0
    """Book messages applied (diffs, or whole top-N snapshots)."""
    dropped: int = 0
    """Diffs not applied because the book was already newer."""
    gaps: int = 0
    """Continuity breaks that discarded the book."""
    snapshots: int = 0
    """REST snapshots installed."""
    refetches: int = 0
    """REST snapshots rejected as too old (or malformed) and fetched again."""
    skipped: int = 0
    """Malformed frames or bodies."""
    integrity_failures: int = 0
    """Books discarded by the integrity check run after every applied message (checksum
    mismatch, broken sequence chain, crossed book), each followed by a resync."""
    crossed: int = 0
    """Of those (and of top-N messages refused): the venue's own best bid was at or
    above its own best ask, which no correct book shows."""
    resubscribes: int = 0
    """Resubscriptions asked for to rebuild a book from the stream's snapshot."""


# --- helpers ------------------------------------------------------------------------------


def parse_levels(raw: RawLevels) -> list[PriceAmount]:
    """Parse ``[[price, amount], ...]``; raises ``DecodeError`` on the first bad number."""
    return [(parse(price), parse(amount)) for price, amount in raw]


class LevelParser:
    """``parse_levels`` for a stream, remembering the decimal strings it has parsed.

    A diff stream repeats itself: the levels near the top are updated frame after
    frame with the same price strings, and every removal carries the same zero
    amount. A dict lookup costs a fraction of ``parse``, and only strings that parsed
    are remembered, so a value is validated exactly as before the first time it is
    seen. Prices and zero amounts are remembered; other amounts rarely come back
    (docs/performance.md, "Design measurements"), so storing them would cost more
    than it saves. The memo is bounded (emptied when full, and only short strings are
    kept) so a venue sending ever new or huge values costs it no memory.
    """

    __slots__ = ("_amounts", "_memo")

    LIMIT: Final = 8192
    """Strings remembered; a few times the levels a venue's diffs touch in minutes."""
    SEEDED: Final = 1024
    """Levels per snapshot side whose strings are remembered."""
    LONGEST: Final = 40
    """Longer strings are parsed every time (no venue sends them)."""

    def __init__(self, *, remember_amounts: bool = False) -> None:
        self._memo: dict[str, Fixed] = {}
        self._amounts = remember_amounts
        """Remember every amount too: right for a top-N snapshot stream, which repeats
        each unchanged level's amount in every message."""

    def __len__(self) -> int:
        """Strings remembered."""
        return len(self._memo)

    def remembered(self) -> list[str]:
        """The strings remembered, for checks."""
        return list(self._memo)

    def __call__(self, raw: RawLevels) -> list[PriceAmount]:
        """Parse ``[[price, amount], ...]``; raises ``DecodeError`` on the first bad number.

        The loop body is ``level`` written inline: this runs for every level of every
        diff, where a method call per level is a measurable share of the parse."""
        if not raw:
            return []  # a diff often changes one side only
        get = self._memo.get
        out: list[PriceAmount] = []
        for price, amount in raw:
            p = get(price)
            if p is None:
                p = self._parse(price)
            a = get(amount)
            if a is None:
                a = parse(amount)
                if not a or self._amounts:
                    self._remember(amount, a)
            out.append((p, a))
        return out

    def level(self, price: str, amount: str) -> PriceAmount:
        """One level, parsed as ``__call__`` parses each (for a reader that decodes its
        levels one at a time, ``venues.top_levels``)."""
        get = self._memo.get
        p = get(price)
        if p is None:
            p = self._parse(price)
        a = get(amount)
        if a is None:
            a = parse(amount)
            if not a or self._amounts:
                self._remember(amount, a)
        return p, a

    def snapshot(self, raw: RawLevels) -> list[PriceAmount]:
        """Parse a snapshot side, remembering the strings of its best ``SEEDED`` levels.

        The diffs that follow mostly touch the levels near the top, so their price
        strings are known from the first diff on; the deep levels are parsed without
        taking room from them.
        """
        seeded = self(raw[: self.SEEDED])
        if len(raw) > self.SEEDED:
            seeded += parse_levels(raw[self.SEEDED :])
        return seeded

    def _parse(self, text: str) -> Fixed:
        value = parse(text)
        self._remember(text, value)
        return value

    def _remember(self, text: str, value: Fixed) -> None:
        if len(text) <= self.LONGEST:
            memo = self._memo
            if len(memo) >= self.LIMIT:
                memo.clear()
            memo[text] = value


def parse_int(text: str, what: str) -> int:
    """A non-negative integer sent as a string (Bitstamp timestamps)."""
    if not (0 < len(text) <= 20 and text.isascii() and text.isdigit()):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise DecodeError(f"{what} is not a non-negative integer: {shown!r}")
    return int(text)


def require_alnum(text: str, what: str) -> str:
    """``text`` when it is non-empty ASCII letters/digits (it goes into URLs and stream names)."""
    if not text or not text.isascii() or not text.isalnum():
        raise ConfigError(f"{what} must be ASCII letters/digits, got {text!r}")
    return text


def join_url(base: str, path: str) -> str:
    """``base`` (with or without a trailing slash) + an absolute ``path``."""
    return base.rstrip("/") + path


# --- interface ----------------------------------------------------------------------------


class VenueProtocol(abc.ABC):
    """One venue, one instrument, one book; reused across reconnects.

    Driving sequence for each connection: ``connection_made()`` (send what it
    returns), then ``receive()`` for every frame and ``snapshot_received()`` for
    every REST body requested with ``FetchSnapshot``; ``heartbeat()`` gives the
    probe to send periodically, if the venue has one.
    """

    venue: str
    mode: Mode
    ws_url: str
    rest_url: str
    streams: tuple[str, ...]
    counters: SyncCounters

    @abc.abstractmethod
    def connection_made(self) -> list[Event]:
        """A new connection is open: forget per-connection state, return the subscribe frames.

        The book is discarded too: whatever was missed while disconnected is
        unknowable, so a diff book is always re-snapshotted after a reconnect.
        """

    @abc.abstractmethod
    def receive(self, frame: str | bytes) -> list[Event]:
        """One WebSocket message in, events out. Never raises on bad input."""

    def snapshot_received(self, token: int, body: bytes) -> list[Event]:
        """A REST body answering ``FetchSnapshot(token=...)``. Never raises on bad input."""
        return [Ignored(f"{self.venue} did not request a snapshot")]

    def heartbeat(self) -> str | None:
        """The application-level liveness probe to send periodically, if any."""
        return None

    def read_depth(self, n: int) -> None:
        """The feed reads at most the top ``n`` levels of this book (``top(n)``).

        A protocol may then parse no more of a top-N snapshot than that (partial
        parsing, ``venues.top_levels``); by default it keeps everything.
        """
        return None

    @property
    def venue_seq(self) -> int | None:
        """The venue's own sequence of the book's current state, where the venue gives one
        (an update id, a sequence number; ``None`` otherwise or without a book).

        Read by the feed each time the top N changes and carried in the view, so a
        consumer across the bus can tell which venue state a view shows. Venue modules
        override it with whatever their sync rules already track: no extra parsing.
        """
        return None

    @property
    def uses_rest(self) -> bool:
        """Whether this protocol may ask for REST snapshots (``FetchSnapshot``): the feed
        then owns an HTTP client. A venue whose book comes whole on the stream says no."""
        return self.mode == "depth"

    @property
    @abc.abstractmethod
    def subscribed(self) -> bool:
        """Every stream was acknowledged on the current connection."""

    @property
    @abc.abstractmethod
    def synced(self) -> bool:
        """Ready to serve: subscribed and, in depth mode, the book is synced to a snapshot."""

    @property
    @abc.abstractmethod
    def has_book(self) -> bool:
        """The book is valid and may be published."""

    @abc.abstractmethod
    def top_bids(self, n: int) -> Side:
        """The best ``n`` bids, best first."""

    @abc.abstractmethod
    def top_asks(self, n: int) -> Side:
        """The best ``n`` asks, best first."""

    def top(self, n: int) -> tuple[Side, Side]:
        """``(top_bids(n), top_asks(n))``; a protocol whose book caches its top may answer
        with the very tuples of the previous read while no change reached them."""
        return self.top_bids(n), self.top_asks(n)
