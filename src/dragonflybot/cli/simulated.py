"""Running the service against the simulator: ``--simulate`` and ``[simulation]``.

The service itself (``dragonflybot.app``) knows nothing of the simulator: it connects
to whatever endpoints its configuration names. Here the simulated venues are started
first, every venue's URLs in the configuration are rewritten to the simulator's
endpoints, and then the ordinary ``run_app`` runs; the simulator is stopped once the
app has shut down (so the feeds' close handshakes still find it there).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol

import attrs
import msgspec
import trio

from dragonflybot.app import App, FeedRunner, default_feeds, plan_topology, run_app
from dragonflybot.config import AppConfig, SimulationConfig, VenueConfig
from dragonflybot.feed import run_feed
from dragonflybot.sim import SimConfig, SimHandle, serve_simulation
from dragonflybot.venues.registry import VENUES
from dragonflybot.venues.spec import VenueSpec


class AppRunner(Protocol):
    """``run_app``'s shape: what runs the service once the simulator is up (``run_app``, or
    ``app_roles.run_roles`` with the process's roles bound)."""

    def __call__(
        self,
        config: AppConfig,
        *,
        venues: Mapping[str, VenueSpec] = ...,
        feed_runner: FeedRunner = ...,
        task_status: trio.TaskStatus[App] = ...,
    ) -> Awaitable[None]: ...


@attrs.frozen
class SimulatedApp:
    """The running service and the simulator it is connected to."""

    app: App
    sim: SimHandle


def simulation_config(config: AppConfig, venues: Mapping[str, VenueSpec] = VENUES) -> SimConfig:
    """What to simulate so that every planned feed has a venue to talk to."""
    plans = plan_topology(config, venues)
    simulation = config.simulation
    if simulation is None:
        raise AssertionError("simulation_config needs a [simulation] section")
    return SimConfig(
        venues=tuple(dict.fromkeys(v.name for plan in plans for v in plan.venues)),
        instruments=tuple(plan.name for plan in plans),
        seed=simulation.seed,
        rate=simulation.rate,
    )


def point_at(
    config: AppConfig, sim: SimHandle, venues: Mapping[str, VenueSpec] = VENUES
) -> AppConfig:
    """``config`` with every venue's URLs replaced by the simulator's endpoints."""

    def rewrite(venues: Sequence[VenueConfig]) -> list[VenueConfig]:
        return [
            msgspec.structs.replace(
                v, ws_url=sim.endpoints[v.name].ws_url, rest_url=sim.endpoints[v.name].rest_url
            )
            for v in venues
        ]

    instruments = [
        i if i.venues is None else msgspec.structs.replace(i, venues=rewrite(i.venues))
        for i in config.instruments
    ]
    return msgspec.structs.replace(
        config,
        instruments=instruments,
        venues=rewrite(default_feeds(config, venues)),
        simulation=None,
    )


async def run_with_simulation(
    config: AppConfig,
    *,
    venues: Mapping[str, VenueSpec] = VENUES,
    feed_runner: FeedRunner = run_feed,
    task_status: trio.TaskStatus[SimulatedApp] = trio.TASK_STATUS_IGNORED,
    runner: AppRunner = run_app,
) -> None:
    """``run_app`` against simulated venues (``config.simulation``; defaults if absent).

    Reports a ``SimulatedApp`` once both run; returns when the app has shut down.
    """
    if config.simulation is None:
        config = msgspec.structs.replace(config, simulation=SimulationConfig())
    sim_config = simulation_config(config, venues)
    async with trio.open_nursery() as nursery:
        sim: SimHandle = await nursery.start(
            functools.partial(serve_simulation, sim_config, venues=venues)
        )

        async def app_task(task_status: trio.TaskStatus[App]) -> None:
            await runner(
                point_at(config, sim, venues),
                venues=venues,
                feed_runner=feed_runner,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()

        app: App = await nursery.start(app_task)
        task_status.started(SimulatedApp(app, sim))
