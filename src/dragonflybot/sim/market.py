"""The simulated market: a seeded stochastic order book per venue and instrument.

Each instrument has one fair price (a mean-reverting random walk in ticks) shared by every
venue; each venue quotes around it with its own fixed offset and its own slowly wandering
noise, so two venues' books overlap and sometimes cross, as real venues briefly do. Orders
are added (a marketable one trades against the other side first, which keeps each venue's
own book uncrossed), cancelled and hit by market orders.

Determinism: every random draw comes from a ``random.Random`` seeded by (seed, venue,
instrument) or (seed, instrument) for the fair price, and the model never reads a clock —
the caller passes each update's time. Same seed and same times give the same updates, so
the same messages, whatever the pacing of the server that drives the model.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from collections import deque

import attrs
import msgspec

from dragonflybot.core.book import FullDepthBook, Level, Side
from dragonflybot.errors import ConfigError
from dragonflybot.sim.instruments import InstrumentSpec


@attrs.frozen(slots=True)
class Update:
    """One market event as a venue publishes it: absolute amounts of the changed levels.

    ``first_id``/``last_id`` are Binance's ``U``/``u`` (one id per changed level);
    ``time_us`` is strictly increasing per market (Bitstamp's ``microtimestamp``).
    Bids are best (highest) first, asks best (lowest) first; amount 0 removes a level.
    """

    seq: int
    first_id: int
    last_id: int
    time_us: int
    bids: Side
    asks: Side


class MarketParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Shape of the simulated order flow; prices in ticks, sizes in lots.

    ``depth`` is set from ``SimConfig.depth``; the rest can be tuned with
    ``SimConfig(market=MarketParams(...))``.
    """

    depth: int = 200
    """Levels kept per side; the worst level is removed when a side grows past it."""
    max_lots: int = 500
    """Largest order, in lots (order sizes are uniform in 1..max_lots)."""
    mean_distance: float = 6.0
    """Mean distance of a new order from the venue's mid, in ticks."""
    mean_cancel_index: float = 5.0
    """Mean book index of a cancelled level: most cancels happen near the top."""
    add_weight: float = 0.5
    """Relative frequency of new limit orders..."""
    cancel_weight: float = 0.3
    """...of cancellations..."""
    trade_weight: float = 0.2
    """...and of market orders hitting the book."""
    offset_sigma: float = 1.5
    """Standard deviation of a venue's fixed offset from the fair price, in ticks."""
    noise_sigma: float = 0.5
    noise_keep: float = 0.98
    """AR(1) coefficient of the venue's noise around fair price + offset."""

    def __post_init__(self) -> None:
        if self.depth < 1 or self.max_lots < 1:
            raise ConfigError("market depth and max_lots must be >= 1")
        if not (self.mean_distance > 0 and self.mean_cancel_index > 0):
            raise ConfigError("market mean_distance and mean_cancel_index must be > 0")
        weights = (self.add_weight, self.cancel_weight, self.trade_weight)
        if min(weights) < 0 or not self.add_weight > 0:
            raise ConfigError("market weights must be >= 0, with add_weight > 0")
        if self.offset_sigma < 0 or self.noise_sigma < 0 or not 0 <= self.noise_keep < 1:
            raise ConfigError("market offset_sigma/noise_sigma must be >= 0, noise_keep in [0, 1)")


class FairPrice:
    """An instrument's fair price in ticks, one value per ``step_ns`` of model time.

    One RNG stream extended in index order, so the walk is a pure function of the index and
    every venue asking in any order sees the same prices. Old values are forgotten (venues
    run on one clock, so they never ask far behind each other).
    """

    __slots__ = ("_first", "_floor", "_kappa", "_rng", "_sigma", "_start", "_step_ns", "_values")

    def __init__(
        self,
        seed: int,
        spec: InstrumentSpec,
        *,
        step_ns: int = 10_000_000,
        sigma: float = 0.2,
        kappa: float = 0.0005,
    ) -> None:
        self._rng = random.Random(f"fair:{seed}:{spec.name}")
        self._start = float(spec.start_price // spec.tick)
        self._floor = self._start / 5
        self._step_ns = step_ns
        self._sigma = sigma
        self._kappa = kappa
        self._values: deque[float] = deque([self._start])
        self._first = 0

    def at(self, elapsed_ns: int) -> float:
        """Fair price (ticks) at ``elapsed_ns`` after the simulation epoch."""
        index = max(0, elapsed_ns // self._step_ns)
        values = self._values
        gauss = self._rng.gauss
        while self._first + len(values) <= index:
            last = values[-1]
            nxt = last + gauss(0.0, self._sigma) - self._kappa * (last - self._start)
            values.append(max(nxt, self._floor))
            if len(values) > 200_000:
                values.popleft()
                self._first += 1
        if index < self._first:
            return values[0]
        return values[index - self._first]


class _Ladder:
    """One side of the model's book: price ticks -> lots, with prices sorted best first.

    Bids store negated ticks so that "best first" is ascending on both sides; index 0 is
    the best level, -1 the worst.
    """

    __slots__ = ("keys", "lots", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.lots: dict[int, int] = {}
        self.keys: list[int] = []

    def __len__(self) -> int:
        return len(self.lots)

    def price(self, index: int) -> int:
        return self.keys[index] * self.sign

    def set(self, ticks: int, lots: int) -> None:
        if lots > 0:
            if ticks not in self.lots:
                insort(self.keys, ticks * self.sign)
            self.lots[ticks] = lots
        elif ticks in self.lots:
            del self.lots[ticks]
            del self.keys[bisect_left(self.keys, ticks * self.sign)]


class VenueMarket:
    """One venue's book for one instrument and the order flow that changes it.

    ``book`` is the simulator's authoritative book (what REST snapshots serve); ``step``
    applies one event to it and returns what the venue publishes about that event.
    """

    def __init__(
        self,
        venue: str,
        spec: InstrumentSpec,
        fair: FairPrice,
        *,
        seed: int,
        epoch_ns: int,
        params: MarketParams | None = None,
    ) -> None:
        self.venue = venue
        self.spec = spec
        self.params = params or MarketParams()
        self._fair = fair
        self._epoch_ns = epoch_ns
        self._rng = random.Random(f"market:{seed}:{venue}:{spec.name}")
        self._offset = self._rng.gauss(0.0, self.params.offset_sigma)
        self._noise = 0.0
        self._bids = _Ladder(-1)
        self._asks = _Ladder(1)
        self.book = FullDepthBook()
        self.seq = 0
        """Number of updates generated so far."""
        self.last_id = self._rng.randrange(10**8, 10**9)
        """Binance update id of the book's current state (REST ``lastUpdateId``)."""
        self.time_us = epoch_ns // 1000
        """Time of the book's current state (Bitstamp ``microtimestamp``)."""
        self._seed_book()

    # --- building blocks -----------------------------------------------------------------

    def _mid(self, time_ns: int) -> float:
        p = self.params
        self._noise = self._noise * p.noise_keep + self._rng.gauss(0.0, p.noise_sigma)
        return self._fair.at(time_ns - self._epoch_ns) + self._offset + self._noise

    def _seed_book(self) -> None:
        rng = self._rng
        base = math.floor(self._mid(self._epoch_ns))
        depth = self.params.depth
        for i in range(2 * depth):
            if len(self._bids) < depth and base - i > 0 and rng.random() < 0.7:
                self._bids.set(base - i, rng.randint(1, self.params.max_lots))
            if len(self._asks) < depth and rng.random() < 0.7:
                self._asks.set(base + 1 + i, rng.randint(1, self.params.max_lots))
        tick, lot = self.spec.tick, self.spec.lot
        self.book.load(
            [Level(t * tick, n * lot) for t, n in self._bids.lots.items()],
            [Level(t * tick, n * lot) for t, n in self._asks.lots.items()],
        )

    @staticmethod
    def _set(ladder: _Ladder, changes: dict[int, int], ticks: int, lots: int) -> None:
        ladder.set(ticks, lots)
        changes[ticks] = lots

    def _consume(self, ladder: _Ladder, changes: dict[int, int], lots: int, limit: int) -> int:
        """Match ``lots`` against ``ladder`` from its best level while the price is within
        ``limit`` (a price the taker accepts; ``-1`` = any). Returns the unfilled lots."""
        while lots and len(ladder):
            best = ladder.price(0)
            if limit >= 0 and (best > limit if ladder.sign > 0 else best < limit):
                break
            have = ladder.lots[best]
            take = min(lots, have)
            self._set(ladder, changes, best, have - take)
            lots -= take
        return lots

    # --- events ---------------------------------------------------------------------------

    def _add(self, bid: bool, mid: float, bch: dict[int, int], ach: dict[int, int]) -> None:
        rng = self._rng
        distance = int(rng.expovariate(1.0 / self.params.mean_distance))
        lots = rng.randint(1, self.params.max_lots)
        base = math.floor(mid)
        if bid:
            ticks = max(1, base - distance)
            lots = self._consume(self._asks, ach, lots, ticks)
            own, changes = self._bids, bch
        else:
            ticks = max(1, base + 1 + distance)
            lots = self._consume(self._bids, bch, lots, ticks)
            own, changes = self._asks, ach
        if lots:
            self._set(own, changes, ticks, own.lots.get(ticks, 0) + lots)

    def _cancel(self, ladder: _Ladder, changes: dict[int, int]) -> None:
        rng = self._rng
        index = min(int(rng.expovariate(1.0 / self.params.mean_cancel_index)), len(ladder) - 1)
        ticks = ladder.price(index)
        have = ladder.lots[ticks]
        left = 0 if have == 1 or rng.random() < 0.5 else rng.randint(1, have - 1)
        self._set(ladder, changes, ticks, left)

    def _trim(self, ladder: _Ladder, changes: dict[int, int]) -> None:
        while len(ladder) > self.params.depth:
            self._set(ladder, changes, ladder.price(-1), 0)

    def step(self, time_ns: int) -> Update:
        """Apply one market event at ``time_ns`` (Unix ns) and return what it changed."""
        rng = self._rng
        p = self.params
        mid = self._mid(time_ns)
        bch: dict[int, int] = {}
        ach: dict[int, int] = {}
        nb, na = len(self._bids), len(self._asks)
        pick = rng.random() * (p.add_weight + p.cancel_weight + p.trade_weight)
        bid_side = rng.random() < 0.5
        if pick >= p.add_weight and (nb if bid_side else na) == 0:
            pick = 0.0  # nothing to cancel or hit on that side: place an order instead
        if pick < p.add_weight:
            # Lean new orders toward the thinner side so neither side empties for long.
            lean = 0.5 + 0.4 * (na - nb) / (na + nb + 1)
            self._add(rng.random() < lean, mid, bch, ach)
        elif pick < p.add_weight + p.cancel_weight:
            if bid_side:
                self._cancel(self._bids, bch)
            else:
                self._cancel(self._asks, ach)
        else:
            lots = rng.randint(1, p.max_lots)
            if bid_side:
                self._consume(self._bids, bch, lots, -1)
            else:
                self._consume(self._asks, ach, lots, -1)
        self._trim(self._bids, bch)
        self._trim(self._asks, ach)
        return self._publish(time_ns, bch, ach)

    def _publish(self, time_ns: int, bch: dict[int, int], ach: dict[int, int]) -> Update:
        tick, lot = self.spec.tick, self.spec.lot
        bids = tuple(Level(t * tick, bch[t] * lot) for t in sorted(bch, reverse=True))
        asks = tuple(Level(t * tick, ach[t] * lot) for t in sorted(ach))
        self.book.apply(bids, asks)
        self.seq += 1
        first = self.last_id + 1
        self.last_id += len(bids) + len(asks)
        self.time_us = max(time_ns // 1000, self.time_us + 1)
        return Update(self.seq, first, self.last_id, self.time_us, bids, asks)
