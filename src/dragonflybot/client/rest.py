"""REST snapshots over httpx, with the venues' rate-limit rules built in.

Venues answer 429 when a client is too fast and (Binance) 418 once it kept going after a 429: both
carry ``Retry-After``, and ignoring it escalates the ban. So every retry sleeps at least
``min_retry_delay``, a ``Retry-After`` is obeyed, and a wait longer than ``max_retry_after`` is
handed back to the caller as an error carrying ``retry_after`` instead of blocking a feed for
minutes. Sleeps use ``trio.sleep`` so tests run them on the autojump clock.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import ssl
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import httpx
import trio

from dragonflybot.client.backoff import Backoff
from dragonflybot.client.tls import default_ssl_context
from dragonflybot.errors import DecodeError, TransportError

log = logging.getLogger(__name__)

_RATE_LIMITED = frozenset({418, 429})
_ERROR_EXCERPT = 200


class HttpStatusError(TransportError):
    """The server answered with a non-2xx status.

    ``retry_after`` is the server's requested wait in seconds (``Retry-After``) when it sent one.
    """

    def __init__(self, url: str, status_code: int, body: str, retry_after: float | None) -> None:
        detail = f": {body}" if body else ""
        super().__init__(f"GET {url}: HTTP {status_code}{detail}")
        self.url = url
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status_code in _RATE_LIMITED or self.status_code >= 500


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), else None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


async def _read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The body, or its first ``limit``+ bytes and True when it is longer than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True
    return b"".join(chunks), False


class RestClient:
    """GET with timeouts, bounded retries and rate-limit handling; use as ``async with``.

    Retried: 418/429 (after ``Retry-After`` or a backoff delay), 5xx, timeouts and network errors,
    at most ``max_retries`` times after the first attempt, each after sleeping at least
    ``min_retry_delay`` (exponential backoff with full jitter above that). Not retried: other 4xx
    (``HttpStatusError``), a body over ``max_body_size`` (``DecodeError``). ``timeout`` bounds one
    whole attempt. ``verify=True`` trusts the system store plus certifi.

    The TLS context is built on the first ``https://`` request, not on entry: loading
    the trust stores takes tens of milliseconds, and a feed pointed at plain ``http://``
    (the simulator) never needs them. ``http://`` URLs get a client of their own whose
    context verifies but trusts nothing, so no TLS through it (say, to a proxy) can
    ever go unverified.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        rng: random.Random | None = None,
        min_retry_delay: float = 0.5,
        max_body_size: int = 64 * 1024 * 1024,
    ) -> None:
        self._timeout = timeout
        self._verify = verify
        self._transport = transport
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._rng = rng if rng is not None else random.Random()
        self._min_retry_delay = min_retry_delay
        self._max_body_size = max_body_size
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        self._stack = AsyncExitStack()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._clients.clear()
        if stack is not None:
            await stack.aclose()

    def _client_for(self, url: str) -> httpx.AsyncClient:
        """The client for ``url``'s scheme, made on first use (see the class docstring)."""
        if self._stack is None:
            raise RuntimeError("RestClient.get_bytes called outside 'async with RestClient()'")
        tls = not url[:7].lower().startswith("http://")
        client = self._clients.get(tls)
        if client is None:
            verify: bool | ssl.SSLContext
            if not tls:
                verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifying, trusts nothing
            elif self._verify is True:
                verify = default_ssl_context()
            else:
                verify = self._verify
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                verify=verify,
                transport=self._transport,
                headers={"User-Agent": "dragonflybot"},
            )
            self._clients[tls] = client
            self._stack.push_async_callback(client.aclose)
        return client

    async def get_bytes(self, url: str, *, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a 2xx answer to ``GET url``; raises ``TransportError`` (or its subclass
        ``HttpStatusError``) once retries are exhausted, ``DecodeError`` for an oversized body."""
        client = self._client_for(url)
        backoff = Backoff(
            self._min_retry_delay,
            max(self._min_retry_delay, self._max_retry_after),
            rng=self._rng,
        )
        failures = 0
        while True:
            try:
                return await self._get_once(client, url, params)
            except TransportError as exc:
                delay = self._retry_delay(exc, backoff, failures)
                if delay is None:
                    exc.add_note(f"gave up after {failures + 1} attempt(s)")
                    raise
                failures += 1
                log.warning(
                    "rest_retry url=%s attempt=%d delay=%.3f error=%s", url, failures, delay, exc
                )
            await trio.sleep(delay)

    def _retry_delay(self, exc: TransportError, backoff: Backoff, failures: int) -> float | None:
        if failures >= self._max_retries:
            return None
        if isinstance(exc, HttpStatusError):
            if not exc.retryable:
                return None
            if exc.retry_after is not None:
                if exc.retry_after > self._max_retry_after:
                    exc.add_note(
                        f"server asks to wait {exc.retry_after:g} s, "
                        f"more than max_retry_after={self._max_retry_after:g} s"
                    )
                    return None
                return max(self._min_retry_delay, exc.retry_after)
        return max(self._min_retry_delay, backoff.next_delay())

    async def _get_once(
        self, client: httpx.AsyncClient, url: str, params: Mapping[str, str] | None
    ) -> bytes:
        try:
            with trio.fail_after(self._timeout):
                async with client.stream("GET", url, params=params) as response:
                    if not response.is_success:
                        body, _ = await _read_at_most(response, _ERROR_EXCERPT)
                        raise HttpStatusError(
                            url,
                            response.status_code,
                            body[:_ERROR_EXCERPT].decode("utf-8", "replace"),
                            parse_retry_after(response.headers.get("Retry-After")),
                        )
                    body, too_large = await _read_at_most(response, self._max_body_size)
        except (trio.TooSlowError, httpx.TimeoutException) as exc:
            raise TransportError(f"GET {url}: no answer within {self._timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if too_large:
            raise DecodeError(f"GET {url}: body larger than {self._max_body_size} bytes")
        return body
