"""The market model without sockets: determinism, book invariants, update consistency."""

from __future__ import annotations

from dragonflybot.core.book import FullDepthBook
from dragonflybot.core.fixed import parse
from dragonflybot.sim.instruments import instrument_spec
from dragonflybot.sim.market import FairPrice, MarketParams, Update, VenueMarket
from dragonflybot.sim.schedule import Schedule

EPOCH = 1_700_000_000_000_000_000
STEP_NS = 10_000_000  # 100 updates/s


def make_market(seed: int, venue: str = "binance", depth: int = 50) -> VenueMarket:
    spec = instrument_spec("ethbtc")
    return VenueMarket(
        venue,
        spec,
        FairPrice(seed, spec),
        seed=seed,
        epoch_ns=EPOCH,
        params=MarketParams(depth=depth),
    )


def run(market: VenueMarket, steps: int) -> list[Update]:
    return [market.step(EPOCH + (i + 1) * STEP_NS) for i in range(steps)]


def test_same_seed_same_updates_different_seed_differs() -> None:
    a = run(make_market(5), 500)
    b = run(make_market(5), 500)
    c = run(make_market(6), 500)
    assert a == b
    assert a != c
    assert make_market(5).last_id == make_market(5).last_id


def test_fair_price_is_a_function_of_time_whatever_the_order_of_questions() -> None:
    spec = instrument_spec("ethbtc")
    forward = FairPrice(3, spec)
    values = [forward.at(i * STEP_NS) for i in range(300)]
    jumping = FairPrice(3, spec)
    assert jumping.at(299 * STEP_NS) == values[299]
    assert [jumping.at(i * STEP_NS) for i in range(300)] == values
    assert len(set(values)) > 100


def test_updates_replayed_on_the_initial_book_give_the_model_book() -> None:
    market = make_market(11)
    mirror = FullDepthBook()
    bids, asks = market.book.depth
    mirror.load(market.book.top_bids(bids), market.book.top_asks(asks))
    start_id = market.last_id
    previous_id = start_id
    previous_us = market.time_us
    for update in run(market, 2000):
        assert update.first_id == previous_id + 1
        assert update.last_id == update.first_id + len(update.bids) + len(update.asks) - 1
        assert update.time_us > previous_us
        assert update.bids or update.asks
        previous_id, previous_us = update.last_id, update.time_us
        mirror.apply(update.bids, update.asks)
    assert market.last_id == previous_id
    assert mirror.bids_dict() == market.book.bids_dict()
    assert mirror.asks_dict() == market.book.asks_dict()


def test_book_stays_uncrossed_on_the_grid_and_within_depth() -> None:
    market = make_market(2, depth=30)
    spec = market.spec
    for _ in run(market, 3000):
        bids, asks = market.book.top_bids(1), market.book.top_asks(1)
        assert bids and asks
        assert bids[0].price < asks[0].price
        nb, na = market.book.depth
        assert nb <= 30 and na <= 30
    for side in (market.book.bids_dict(), market.book.asks_dict()):
        for price, amount in side.items():
            assert price % spec.tick == 0 and price > 0
            assert amount % spec.lot == 0 and amount > 0


def test_update_sides_are_best_first() -> None:
    for update in run(make_market(8), 1000):
        assert [lv.price for lv in update.bids] == sorted(
            (lv.price for lv in update.bids), reverse=True
        )
        assert [lv.price for lv in update.asks] == sorted(lv.price for lv in update.asks)


def test_two_venues_share_the_fair_price_and_sometimes_cross() -> None:
    spec = instrument_spec("ethbtc")
    fair = FairPrice(4, spec)
    a = VenueMarket("binance", spec, fair, seed=4, epoch_ns=EPOCH)
    b = VenueMarket("bitstamp", spec, fair, seed=4, epoch_ns=EPOCH)
    crossed = 0
    gaps = []
    for i in range(3000):
        t = EPOCH + (i + 1) * STEP_NS
        a.step(t)
        b.step(t)
        a_bid, a_ask = a.book.top_bids(1)[0].price, a.book.top_asks(1)[0].price
        b_bid, b_ask = b.book.top_bids(1)[0].price, b.book.top_asks(1)[0].price
        crossed += a_bid >= b_ask or b_bid >= a_ask
        gaps.append(abs((a_bid + a_ask) - (b_bid + b_ask)) // (2 * spec.tick))
    assert crossed > 0
    # They quote the same instrument: mid prices stay within a few ticks of each other.
    assert sorted(gaps)[len(gaps) // 2] <= 10


def test_known_and_generic_instruments() -> None:
    assert instrument_spec("ethbtc").tick == parse("0.00001")
    generic = instrument_spec("foobar")
    assert generic.name == "foobar"


def test_schedule_is_exact_and_pauses_shift_it() -> None:
    schedule = Schedule(4.0, start=100.0, epoch_ns=EPOCH)
    assert schedule.next_due == 100.25
    assert [schedule.take() for _ in range(4)] == [EPOCH + k * 250_000_000 for k in (1, 2, 3, 4)]
    assert schedule.next_due == 101.25
    schedule.pause(101.0)
    schedule.resume(111.0)
    assert schedule.next_due == 111.25
    assert schedule.take() == EPOCH + 5 * 250_000_000  # model time stood still while paused
    schedule.skip(2.0)  # fell behind: real time went on
    assert schedule.next_due == 113.5
    assert schedule.take() == EPOCH + 2 * 10**9 + 6 * 250_000_000
