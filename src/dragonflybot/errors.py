"""One exception hierarchy for the whole package.

Each layer raises its own subclass and translates lower-layer errors at its seam
with ``raise ... from``, so a caller can catch ``DragonflybotError`` (or one
branch of it) without knowing which library failed underneath.
"""

from __future__ import annotations


class DragonflybotError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(DragonflybotError):
    """A configuration value, CLI flag or topology is invalid."""


class DecodeError(DragonflybotError):
    """A value from the wire could not be decoded (malformed number, frame, body)."""


class TransportError(DragonflybotError):
    """The connection to a peer failed, timed out or closed (client/protocol layer)."""


class VenueError(DragonflybotError):
    """A venue answered in a way the protocol does not allow, or refused a request."""

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class SubscriptionError(VenueError):
    """The venue rejected or never acknowledged a subscription."""


class ReconnectRequested(VenueError):
    """The venue asked us to reconnect (maintenance, connection age limit)."""


class ServiceError(DragonflybotError):
    """The gRPC service could not start or serve (e.g. address already in use)."""


class BusError(DragonflybotError):
    """The message bus (Redis) is unreachable, or refused a command (bus layer)."""


class BusMessageError(BusError, DecodeError):
    """A bus message could not be decoded: undecodable bytes, wrong version or kind, bad values."""
