"""The ladder and FIX on a gateway, as real processes over a real redis-server.

Two ``dragonflybot feed`` processes (binance, bitstamp) against venues simulated
in this process, a ``dragonflybot aggregate`` and a ``dragonflybot-grpc-server
--bus`` gateway whose config file has ``[fix]`` and a ladder deeper than the
book, all started by the installed commands. A grpcio ``LiquidityService``
client and a FIX client (full refreshes of the BBO and the ladder) must show,
once the market is frozen, exactly the merge and the ladder of what the
simulator last sent; killing the binance feed process takes binance out of the
ladder too. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import trio
from cli.test_entrypoints import script
from e2e.conftest import INSTRUMENT
from fix.rig import CLIENT, SERVER, RawClient

from dragonflybot.core.liquidity import build_ladder
from dragonflybot.core.view import VenueView
from dragonflybot.fix.marketdata import BookKind, MDRequest, SubscriptionType, ladder_entries
from dragonflybot.service.liquidity import SERVICE_NAME as LIQUIDITY
from dragonflybot.sim import SimConfig, SimHandle, serve_simulation

from .redis_servers import RedisServer
from .test_roles_gateway import (
    FixBooks,
    expected_ladder,
    ladder_rows,
    pb,
    streaming,
)
from .test_roles_processes import processes, start, start_feed

DEPTH, LADDER = 5, 8
STALE_AFTER = 1.5


def deploy_config(path: Path, sim: SimHandle, redis: RedisServer) -> str:
    venues = "".join(
        f'[[venues]]\nname = "{name}"\nmode = "depth"\nws_url = "{sim.endpoints[name].ws_url}"\n'
        f'rest_url = "{sim.endpoints[name].rest_url}"\nstale_after = 10.0\n'
        "backoff_base = 0.05\nbackoff_cap = 0.3\nconnect_timeout = 2.0\nrest_timeout = 2.0\n"
        for name in ("binance", "bitstamp")
    )
    path.write_text(
        f'[bus]\nurl = "{redis.url}"\nprefix = "gwp"\nstale_after = {STALE_AFTER}\n'
        "heartbeat_interval = 0.3\nrefresh_after = 0.3\ntimeout = 1.0\nbackoff_cap = 0.3\n\n"
        '[fix]\nlisten = "127.0.0.1:0"\n'
        f'[[fix.sessions]]\nsender_comp_id = "{SERVER}"\ntarget_comp_id = "{CLIENT}"\n'
        'password = "pw"\n\n'
        f'[[instruments]]\nname = "{INSTRUMENT}"\ndepth = {DEPTH}\nliquidity_depth = {LADDER}\n'
        'listen = "127.0.0.1:0"\n\n' + venues
    )
    return str(path)


def ladder_call(channel: grpc.Channel) -> Any:
    method = channel.unary_stream(
        f"/{LIQUIDITY}/Ladder",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=pb.LadderUpdate.FromString,
    )
    return method(pb.LadderRequest(instrument=INSTRUMENT), timeout=120)


def published(sim: SimHandle, venues: Sequence[str]) -> list[VenueView]:
    return [
        VenueView(
            v,
            sim.published(v, INSTRUMENT).top_bids(LADDER),
            sim.published(v, INSTRUMENT).top_asks(LADDER),
            None,
            0,
        )
        for v in venues
    ]


async def settle(sim: SimHandle, ladder: Any, fix: FixBooks, venues: Sequence[str]) -> None:
    """Freeze the market; the gRPC ladder and the FIX ladder both show exactly the ladder of
    ``venues``' published books (a venue just back may need the market stepped once)."""
    sim.pause()
    try:
        for _ in range(10):
            await sim.flushed()
            views = published(sim, venues)
            want = expected_ladder(views, LADDER)
            with trio.move_on_after(4):
                while not (  # noqa: ASYNC110 - the gRPC reader is a thread
                    ladder.latest is not None
                    and ladder_rows(ladder.latest) == want
                    and fix.books.get("lad") == fix_ladder(views)
                ):
                    await trio.sleep(0.02)
                return
            sim.advance(1)
        raise AssertionError(f"never settled on\n{want}\ngRPC: {ladder.latest}\nFIX: {fix.books}")
    finally:
        sim.resume()


def fix_ladder(views: list[VenueView]) -> Any:
    request = MDRequest("lad", SubscriptionType.SUBSCRIBE, book=BookKind.LADDER, depth=LADDER)
    return ladder_entries(build_ladder(views, LADDER), request)


async def test_gateway_process_serves_the_ladder_over_grpc_and_fix(
    tmp_path: Path, redis: RedisServer
) -> None:
    both = ["binance", "bitstamp"]
    sim_config = SimConfig(venues=tuple(both), instruments=("ethbtc",), seed=11, rate=20.0)
    with processes() as started, trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            sim: SimHandle = await nursery.start(serve_simulation, sim_config)
            config = deploy_config(tmp_path / "deploy.toml", sim, redis)
            gateway, match = await start(
                started,
                r"listening on 127\.0\.0\.1:(\d+)",
                script("dragonflybot-grpc-server"),
                "--config",
                config,
                "--bus",
                "--listen",
                "127.0.0.1:0",
            )
            port = int(match[1])
            fix_port = int(
                (
                    await trio.to_thread.run_sync(
                        gateway.wait_for_line, r"FIX acceptor listening on 127\.0\.0\.1:(\d+)", 30.0
                    )
                )[1]
            )
            await start(
                started,
                r"bus subscriber on redis",
                script("dragonflybot"),
                "aggregate",
                "--config",
                config,
            )
            await start_feed(started, config, "bitstamp")
            binance = await start_feed(started, config, "binance")

            fix = FixBooks(await RawClient.connect(fix_port))
            assert (await fix.client.logon()).msg_type == "A"
            await fix.client.subscribe("lad", update="0", book="1", symbol=INSTRUMENT)
            nursery.start_soon(fix.read)
            async with streaming(f"127.0.0.1:{port}", ladder_call) as ladder:
                await settle(sim, ladder, fix, both)
                assert ladder.latest.live_venues == both

                binance.popen.kill()  # without a word: its heartbeats stop
                await settle(sim, ladder, fix, ["bitstamp"])
                assert ladder.latest.live_venues == ["bitstamp"]
            nursery.cancel_scope.cancel()
