"""A venue registered in this test module alone runs through sim -> feed -> server -> client.

The proof that the registry is the only list of venues: ``mockex`` (Binance's wire format
under another name) is a client protocol, a simulated venue and one ``VenueSpec``, all
defined here; nothing else in the project names it, and it reaches a gRPC client's
consolidated book beside Bitstamp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs
import trio

from dragonflybot.cli.simulated import SimulatedApp, run_with_simulation
from dragonflybot.config import AppConfig, InstrumentConfig, SimulationConfig, VenueConfig
from dragonflybot.service.channel import open_channel
from dragonflybot.service.messages import Empty
from dragonflybot.service.proto.orderbook_grpc import OrderbookAggregatorStub
from dragonflybot.sim import binance_venue
from dragonflybot.sim.plugin import SimVenue, load_sim_venue
from dragonflybot.venues import binance, bitstamp
from dragonflybot.venues.registry import VENUES, venue_map
from dragonflybot.venues.spec import VenueSpec

NAME: Final = "mockex"


class MockexProtocol(binance.BinanceProtocol):
    """The client side: Binance's protocol, reporting itself as ``mockex``."""

    def __init__(self, instrument: str, **kwargs: object) -> None:
        super().__init__(instrument, **kwargs)  # type: ignore[arg-type]
        self.venue = NAME

    @classmethod
    def from_config(cls, config: VenueConfig, instrument: str) -> MockexProtocol:
        return cls(
            instrument,
            mode=config.mode,
            ws_url=config.ws_url,
            rest_url=config.rest_url,
            symbol=config.symbol,
            levels=config.depth,
        )


class MockexSimProtocol(binance_venue.BinanceProtocol):
    """The simulated side: Binance's server protocol under the new name."""

    name = NAME


SIM_VENUE: Final = attrs.evolve(binance_venue.SIM_VENUE, protocol=MockexSimProtocol)

SPEC: Final = VenueSpec(
    name=NAME,
    create=MockexProtocol.from_config,
    default_ws_url="wss://mockex.invalid/stream",
    default_rest_url="https://mockex.invalid",
    symbol=binance.symbol_of,
    sim=f"{__name__}:SIM_VENUE",
    url_hosts=("mockex",),
)

TEST_VENUES: Final[Mapping[str, VenueSpec]] = venue_map(SPEC, bitstamp.SPEC)


def test_the_fake_venue_is_not_in_the_registry_and_its_sim_loads() -> None:
    assert NAME not in VENUES
    assert isinstance(load_sim_venue(SPEC), SimVenue)


async def test_a_venue_registered_here_reaches_the_client() -> None:
    config = AppConfig(
        instruments=[InstrumentConfig(name="ethbtc", depth=5, listen="127.0.0.1:0")],
        venues=[VenueConfig(name=NAME, mode="depth"), VenueConfig(name="bitstamp", mode="depth")],
        simulation=SimulationConfig(seed=3, rate=50.0),
        log_level="WARNING",
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running: SimulatedApp = await nursery.start(
                lambda task_status: run_with_simulation(
                    config, venues=TEST_VENUES, task_status=task_status
                )
            )
            assert running.sim.venues == (NAME, "bitstamp")
            assert running.sim.endpoints[NAME].ws_url.endswith("/stream")
            runtime = running.app.instruments["ETH-BTC"]
            seen: set[str] = set()
            async with open_channel("127.0.0.1", runtime.port) as channel:
                async for summary in OrderbookAggregatorStub(channel).BookSummary(Empty()):
                    seen |= {lv.exchange for lv in [*summary.bids, *summary.asks]}
                    if seen == {NAME, "bitstamp"}:
                        break
            assert runtime.feed_stats[NAME].venue == NAME
            running.app.shutdown()
