"""``Ticker``: one clock for every rate-capped stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from dragonflybot.errors import ConfigError
from dragonflybot.service.ticker import Ticker


async def test_waiters_wake_together_once_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = Ticker(10, phases=1)
    woke: list[tuple[str, float]] = []

    async def waiter(name: str, rounds: int) -> None:
        for _ in range(rounds):
            await ticker.wait()
            woke.append((name, trio.current_time()))

    start = trio.current_time()
    with trio.fail_after(5):  # a waiter never woken would wait forever
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, "a", 3)
            nursery.start_soon(waiter, "b", 3)
    times = sorted({round(t - start, 9) for _, t in woke})
    assert times == [0.1, 0.2, 0.3]
    assert sorted(name for name, _ in woke) == ["a"] * 3 + ["b"] * 3
    assert ticker.ticks == 3


async def test_phases_tick_in_turn_each_once_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = Ticker(10, phases=4)
    woke: dict[int, list[float]] = {}
    start = trio.current_time()

    async def waiter(phase: int) -> None:
        for _ in range(3):
            await ticker.wait(phase)
            woke.setdefault(phase, []).append(round(trio.current_time() - start, 9))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(waiter, ticker.phase())
    # Phase p ticks at (p + 1) * 25 ms, then every 100 ms: never two phases at once.
    assert woke == {p: [round((p + 1) * 0.025 + k * 0.1, 9) for k in range(3)] for p in range(4)}
    assert ticker.phase() == 0  # round robin: the fifth waiter shares phase 0


@pytest.mark.parametrize("phases", [1, 3])
async def test_a_cancelled_keeper_hands_the_clock_over(
    autojump_clock: trio.testing.MockClock, phases: int
) -> None:
    """The keeper waits on phase 0 and is cancelled before any tick; a follower on the
    last phase (the same one when there is one phase) still gets its tick at 100 ms."""
    ticker = Ticker(10, phases=phases)
    woke: list[float] = []

    async def follower() -> None:
        await ticker.wait(phases - 1)
        woke.append(trio.current_time())

    start = trio.current_time()
    with trio.fail_after(5):  # a follower left without a keeper would wait forever
        await _keeper_cancelled_before_the_tick(ticker, follower, woke)
    assert woke[0] == -1.0
    assert woke[1] - start == pytest.approx(0.1)
    assert ticker.ticks == phases


async def _keeper_cancelled_before_the_tick(
    ticker: Ticker, follower: Callable[[], Awaitable[None]], woke: list[float]
) -> None:
    async with trio.open_nursery() as nursery:
        keeper_scope = trio.CancelScope()

        async def keeper() -> None:
            with keeper_scope:
                await ticker.wait()
            woke.append(-1.0)  # cancelled: it never saw a tick

        nursery.start_soon(keeper)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        keeper_scope.cancel()


async def test_a_late_tick_is_not_made_up(autojump_clock: trio.testing.MockClock) -> None:
    ticker = Ticker(10, phases=1)
    await ticker.wait()
    await trio.sleep(1.0)  # nobody waits for ten intervals
    before = trio.current_time()
    await ticker.wait()
    assert trio.current_time() - before == pytest.approx(0.1)
    assert ticker.ticks == 2


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_a_rate_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ConfigError):
        Ticker(rate)
