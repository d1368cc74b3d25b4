"""TLS defaults shared by the WebSocket and REST clients.

Venues are reached over the public internet, so certificates are always verified. The system
store is tried first (it carries corporate or distro-added roots); certifi's bundle is added on
top because slim containers and some macOS Pythons ship with an empty or stale system store.
"""

from __future__ import annotations

import ssl

import certifi


def default_ssl_context() -> ssl.SSLContext:
    """A verifying client context trusting the system store plus certifi's CA bundle."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context
