"""Layer 1, client/protocol: WebSocket transport, REST client and reconnect backoff.

Feeds depend on these names only; the modules behind them are replaceable.
"""

from dragonflybot.client.backoff import Backoff
from dragonflybot.client.rest import HttpStatusError, RestClient
from dragonflybot.client.tls import default_ssl_context
from dragonflybot.client.transport import BACKENDS, Backend, MessageStream, connect_websocket

__all__ = [
    "BACKENDS",
    "Backend",
    "Backoff",
    "HttpStatusError",
    "MessageStream",
    "RestClient",
    "connect_websocket",
    "default_ssl_context",
]
