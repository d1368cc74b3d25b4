"""Splitting a ``ws://`` / ``wss://`` URL into what a WebSocket handshake needs.

Kept apart from the backends so both reject a bad URL the same way, before any I/O: a wrong
scheme or a missing host is a configuration mistake, not a network failure worth retrying.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from dragonflybot.errors import ConfigError

_DEFAULT_PORTS = {"ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class WebSocketTarget:
    """Where to connect and what to ask for in the upgrade request."""

    secure: bool
    host: str
    port: int
    resource: str
    host_header: str


def parse_ws_url(url: str) -> WebSocketTarget:
    """Parse ``url``; raise ``ConfigError`` unless it is an absolute ws:// or wss:// URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        explicit_port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid WebSocket URL {url!r}: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"WebSocket URL must start with ws:// or wss://, got {url!r}")
    host = parts.hostname
    if not host:
        raise ConfigError(f"WebSocket URL has no host: {url!r}")
    default_port = _DEFAULT_PORTS[parts.scheme]
    port = default_port if explicit_port is None else explicit_port
    resource = parts.path or "/"
    if parts.query:
        resource = f"{resource}?{parts.query}"
    # RFC 6455 4.1: the Host header carries the port only when it is not the scheme's default;
    # IPv6 literals keep their brackets there.
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    return WebSocketTarget(
        secure=parts.scheme == "wss",
        host=host,
        port=port,
        resource=resource,
        host_header=host_header,
    )
