"""A topology built by hand from the library's parts: two books over the same feeds.

The feeds keep each venue's top 20; a tee hands every update to two aggregators,
one merging the top 5 (served over gRPC, for clients that want the touch) and one
merging the top 20 (read in-process here, where the numbered states show how many
the reader skipped). Everything runs against the simulated venues, offline:

    .venv/bin/python examples/custom_topology.py --duration 5
    .venv/bin/dragonflybot-grpc-client --server 127.0.0.1:50055    # while it runs

(from a clone after ``make install``; with the virtualenv activated, plain ``python``.)
"""

from __future__ import annotations

import argparse
import functools
import sys

import trio

from dragonflybot.aggregator import Aggregator, BookState, Fanout, tee_updates
from dragonflybot.config import VenueConfig, format_listen, parse_listen
from dragonflybot.core.fixed import to_str
from dragonflybot.core.view import VenueUpdate
from dragonflybot.feed import FeedStats, run_feed
from dragonflybot.service import BookSummaryService, GrpcServer, HealthService, SummaryPublisher
from dragonflybot.sim import SimConfig, SimHandle, serve_simulation

INSTRUMENT = "ETH-BTC"
VENUES = ("binance", "bitstamp")
FEED_DEPTH = 20


async def watch_deep_book(book: Fanout[BookState], every: float) -> None:
    """Print the deep book's spread now and then, and how many states were skipped."""
    last_seq = 0
    with book.subscribe() as states:
        async for state in states:
            skipped = max(0, state.seq - last_seq - 1)
            last_seq = state.seq
            spread = to_str(state.book.spread) if state.book.spread is not None else "-"
            levels = len(state.book.bids) + len(state.book.asks)
            live = ",".join(sorted(state.live)) or "none"
            print(
                f"deep book #{state.seq}: {levels} levels, spread {spread}, live {live}, "
                f"skipped {skipped}",
                flush=True,
            )
            await trio.sleep(every)  # a slow reader: the fan-out conflates for it


async def run(listen: str, duration: float, seed: int) -> dict[str, FeedStats]:
    host, port = parse_listen(listen)
    stats = {venue: FeedStats() for venue in VENUES}
    touch = SummaryPublisher()  # top 5, encoded once per state for every gRPC client
    deep: Fanout[BookState] = Fanout()  # top 20, for in-process readers
    server = GrpcServer([BookSummaryService(touch.books), HealthService(touch.serving)], host, port)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        print(f"top-5 book on {format_listen(host, bound)}", flush=True)
        sim: SimHandle = await nursery.start(
            serve_simulation, SimConfig(venues=VENUES, instruments=(INSTRUMENT,), seed=seed)
        )

        feeds_send, feeds_receive = trio.open_memory_channel[VenueUpdate](64)
        touch_send, touch_receive = trio.open_memory_channel[VenueUpdate](64)
        deep_send, deep_receive = trio.open_memory_channel[VenueUpdate](64)
        nursery.start_soon(Aggregator(5, touch).run, touch_receive)
        nursery.start_soon(Aggregator(20, deep).run, deep_receive)
        nursery.start_soon(tee_updates, feeds_receive, [touch_send, deep_send])
        feeds = trio.CancelScope()
        feeds_done = trio.Event()

        async def run_feeds() -> None:
            with feeds:
                async with trio.open_nursery() as feed_nursery, feeds_send:
                    for venue in VENUES:
                        endpoints = sim.endpoints[venue]
                        config = VenueConfig(
                            name=venue,
                            mode="depth",
                            ws_url=endpoints.ws_url,
                            rest_url=endpoints.rest_url,
                        )
                        feed = functools.partial(
                            run_feed,
                            config,
                            INSTRUMENT,
                            FEED_DEPTH,
                            feeds_send.clone(),
                            stats=stats[venue],
                        )
                        feed_nursery.start_soon(feed)
            feeds_done.set()

        nursery.start_soon(run_feeds)
        nursery.start_soon(watch_deep_book, deep, 0.5)

        await trio.sleep(duration)
        # Streams end with UNAVAILABLE; the feeds close their WebSockets while the
        # venues are still there to answer; then everything else is cancelled.
        server.shutdown()
        feeds.cancel()
        with trio.move_on_after(1):
            await server.wait_closed()
            await feeds_done.wait()
        nursery.cancel_scope.cancel()
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", default="127.0.0.1:50055")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    stats = trio.run(run, args.listen, args.duration, args.seed)
    for venue, s in stats.items():
        print(f"{venue}: {s.frames} frames, {s.forwarded} views forwarded, state {s.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
