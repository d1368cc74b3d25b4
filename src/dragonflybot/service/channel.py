"""Client side: a purerpc channel with a small HTTP/2 flow-control window.

purerpc's own ``insecure_channel`` advertises a 64 MiB window per stream and
reads everything the server sends into an unbounded queue, acknowledging only
what the application consumes. For a book stream that means a slow reader can
sit on ~100 s of stale Summaries inside its own transport while the server
believes it is keeping up. A small window makes the server's writes wait for
this client instead, which lets the server's conflation skip stale states.
(``follow_book`` goes further and drains the stream as fast as it arrives,
keeping only the newest Summary for a slow display.)

purerpc sizes the stream window as twice the largest accepted message; so the
window is set through ``max_message_length`` (32 KiB -> a 64 KiB window, the
size grpcio starts with, instead of 64 MiB),
which also keeps a whole message inside the window, as purerpc needs (it
acknowledges data per complete message).

``ChannelSecurity`` is what a server with ``[tls]``/``[auth]`` asks of a client:
TLS trusting a given CA (and a client certificate when the server wants one),
and the bearer token, which ``metadata`` puts in every call's headers. The token
is never logged and never part of an error message.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import trio

from dragonflybot.config import format_listen
from dragonflybot.errors import TransportError
from dragonflybot.service.purerpc_adapter import ClientSocket, GRPCConfiguration

MAX_MESSAGE = 32 * 1024
"""Largest Summary accepted: a book at the maximum depth (250 a side) is about 15 KiB."""


@attrs.frozen(slots=True)
class ChannelSecurity:
    """TLS and token for a server that requires them (``--tls-ca``, ``--token-file``)."""

    ssl_context: ssl.SSLContext | None = None
    """Speak TLS with this context (``security.client_tls_context``); ``None``: plaintext."""
    token: bytes | None = attrs.field(default=None, repr=False)
    """Sent as ``authorization: Bearer <token>`` on every call; never printed."""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self.token is None:
            return ()
        return (("authorization", "Bearer " + self.token.decode("ascii")),)


class Channel:
    """What purerpc's generated stubs need from a channel: host, port, a gRPC socket;
    plus ``metadata``, to pass to every call (the bearer token, if any)."""

    def __init__(
        self,
        host: str,
        port: int,
        grpc_socket: Any,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._grpc_socket = grpc_socket
        self.metadata = metadata


@contextlib.asynccontextmanager
async def open_channel(
    host: str,
    port: int,
    *,
    connect_timeout: float = 5.0,
    max_message: int = MAX_MESSAGE,
    security: ChannelSecurity | None = None,
) -> AsyncIterator[Channel]:
    """Connect to ``host:port`` (with TLS if ``security`` says so); ``TransportError`` if
    that fails within ``connect_timeout``."""
    security = security if security is not None else ChannelSecurity()
    socket: anyio.abc.ByteStream
    try:
        with trio.fail_after(connect_timeout):
            if security.ssl_context is not None:
                socket = await anyio.connect_tcp(
                    host,
                    port,
                    ssl_context=security.ssl_context,
                    tls_standard_compatible=False,
                )
            else:
                socket = await anyio.connect_tcp(host, port)
    except trio.TooSlowError as exc:
        raise TransportError(f"cannot connect to {format_listen(host, port)}: timed out") from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise TransportError(
            f"cannot connect to {format_listen(host, port)}: TLS failed: {reason}"
        ) from exc
    except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
        raise TransportError(
            f"cannot connect to {format_listen(host, port)}: the server closed the connection "
            "during the TLS handshake (is it plaintext, or does it want a client certificate?)"
        ) from exc
    except OSError as exc:
        # anyio reports "All connection attempts failed" and chains the real reason.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        raise TransportError(f"cannot connect to {format_listen(host, port)}: {reason}") from exc
    async with socket:
        config = GRPCConfiguration(client_side=True, max_message_length=max_message)
        async with ClientSocket(config, socket) as grpc_socket:
            yield Channel(host, port, grpc_socket, security.metadata)
