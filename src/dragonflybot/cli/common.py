"""What every entrypoint shares: one-line errors, exit codes, logging, signals.

A user who mistypes a flag gets one line naming the problem and exit code 2,
never a traceback; a service that is told to stop (SIGINT, SIGTERM) shuts down
gracefully and exits 0. Errors the program raises on purpose are
``DragonflybotError``s; they arrive here possibly wrapped in exception groups by
the nurseries they crossed, so they are unwrapped before being shown.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeVar

import attrs
import trio

from dragonflybot.app import App, run_app
from dragonflybot.cli.simulated import AppRunner, SimulatedApp, run_with_simulation
from dragonflybot.config import AppConfig, LogFormat
from dragonflybot.errors import (
    ConfigError,
    DragonflybotError,
    ServiceError,
    SubscriptionError,
)
from dragonflybot.logging_setup import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

USAGE_ERRORS = (ConfigError, ServiceError, SubscriptionError)
"""Errors the user fixes by changing the command line or the config: exit 2."""

log = logging.getLogger("dragonflybot")

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, error: BaseException) -> int:
    """Print ``error`` as one line and return its exit code."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"{prog}: error: {text}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_FAILURE


def setup_logging(level: str, log_format: LogFormat = "text") -> None:
    """Logs go to stderr, so stdout stays clean for JSON lines or the live table."""
    configure_logging(level, log_format)


def run(prog: str, main: Callable[[], Awaitable[int]]) -> int:
    """``trio.run(main)`` with every deliberate error turned into one line and an exit code."""
    try:
        return run_unwrapped(main)
    except DragonflybotError as exc:
        return fail(prog, exc)
    except KeyboardInterrupt:
        # Only reachable before the signal handlers are installed.
        return 130


def run_unwrapped(main: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(main)``, but a deliberate error arrives bare, not inside exception groups.

    Anything else (a bug) propagates untouched, groups and all.
    """
    try:
        return trio.run(main)
    except BaseExceptionGroup as group:
        error = _deliberate(group)
        if error is None:
            raise
        raise error from None


def _deliberate(group: BaseExceptionGroup[BaseException]) -> DragonflybotError | None:
    """The first ``DragonflybotError`` of a group holding only those (and cancellations)."""
    found: DragonflybotError | None = None
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _deliberate(exc)
            if inner is None:
                return None
            found = found or inner
        elif isinstance(exc, DragonflybotError):
            found = found or exc
        elif not isinstance(exc, trio.Cancelled):
            return None
    return found


async def until_signal(body: Callable[[], Awaitable[object]]) -> None:
    """Run ``body`` until it returns or SIGINT/SIGTERM arrives; either is a normal end."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            await body()
            nursery.cancel_scope.cancel()


async def _stop_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


def serve_main(
    prog: str,
    make_config: Callable[[], AppConfig],
    *,
    duration: float | None = None,
    companion: Callable[[App], Awaitable[None]] | None = None,
    runner: AppRunner = run_app,
) -> int:
    """The body of the serving entrypoints: config (a mistake is one line), logging, the app.

    ``duration``, ``companion`` and ``runner`` are ``serve_until_signal``'s.
    """
    try:
        config = make_config()
    except DragonflybotError as exc:
        return fail(prog, exc)
    setup_logging(config.log_level, config.log_format)
    return run(
        prog,
        lambda: serve_until_signal(config, duration=duration, companion=companion, runner=runner),
    )


async def serve_until_signal(
    config: AppConfig,
    *,
    duration: float | None = None,
    companion: Callable[[App], Awaitable[None]] | None = None,
    runner: AppRunner = run_app,
) -> int:
    """Run the app until SIGINT/SIGTERM (or ``duration`` seconds, or ``companion`` returns).

    The first signal starts the graceful shutdown; a second one cuts it short.
    ``companion`` runs beside the app (the demo's client) and ends with it.
    ``runner`` runs the app: ``run_app``, or a process's roles (``app_roles``).
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def app_task(task_status: trio.TaskStatus[App]) -> None:
                if config.simulation is not None:
                    await run_with_simulation(
                        config, task_status=_AppOnly(task_status), runner=runner
                    )
                else:
                    await runner(config, task_status=task_status)
                nursery.cancel_scope.cancel()

            app: App = await nursery.start(app_task)
            nursery.start_soon(_watch_signals, signals, app, nursery.cancel_scope)
            if duration is not None:
                nursery.start_soon(_stop_after, duration, app)
            if companion is not None:
                nursery.start_soon(_run_companion, companion, app)
    return EXIT_OK


@attrs.frozen
class _AppOnly:
    """Reports the app of a ``SimulatedApp`` to a caller that waits for an ``App``."""

    inner: trio.TaskStatus[App]

    def started(self, value: SimulatedApp | None = None) -> None:
        assert value is not None
        self.inner.started(value.app)


async def _watch_signals(signals: AsyncIterator[int], app: App, scope: trio.CancelScope) -> None:
    async for signum in signals:
        if app.stopping:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            scope.cancel()
            return
        log.info("%s received: shutting down", signal.Signals(signum).name)
        app.shutdown()


async def _stop_after(duration: float, app: App) -> None:
    await trio.sleep(duration)
    app.shutdown()


async def _run_companion(companion: Callable[[App], Awaitable[None]], app: App) -> None:
    try:
        await companion(app)
    finally:
        app.shutdown()
