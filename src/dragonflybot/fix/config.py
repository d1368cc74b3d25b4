"""The ``[fix]`` table of the configuration file (decoded by ``dragonflybot.config``).

    [fix]
    listen = "0.0.0.0:9878"
    tls_cert = "server.pem"          # optional: both set -> FIX over TLS
    tls_key = "server.key"

    [[fix.sessions]]
    sender_comp_id = "DRAGONFLY"     # ours: the client's TargetCompID (56)
    target_comp_id = "BANK1"         # the client's SenderCompID (49)
    password = "s3cret"              # optional: Logon must carry it in 554

Without ``[[fix.sessions]]`` one session is accepted: ``DRAGONFLY`` <- ``CLIENT``,
no password (fine on the default loopback address, not on an open one).
"""

from __future__ import annotations

import ssl
from typing import Annotated

import msgspec

from dragonflybot.errors import ConfigError
from dragonflybot.fix.session import SessionConfig, SessionLimits

DEFAULT_FIX_LISTEN = "127.0.0.1:9878"
DEFAULT_SENDER = "DRAGONFLY"
DEFAULT_TARGET = "CLIENT"

CompID = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class FixSessionEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    sender_comp_id: CompID
    target_comp_id: CompID
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None


class FixConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    listen: str = DEFAULT_FIX_LISTEN
    sessions: list[FixSessionEntry] = msgspec.field(
        default_factory=lambda: [
            FixSessionEntry(sender_comp_id=DEFAULT_SENDER, target_comp_id=DEFAULT_TARGET)
        ]
    )
    min_heartbeat: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 1
    max_heartbeat: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    logon_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds a new connection has to complete TLS and send its Logon."""
    logout_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    send_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds one write may block (a client that stopped reading) before it is dropped."""
    tls_cert: str | None = None
    tls_key: str | None = None


def accepted_sessions(config: FixConfig) -> dict[tuple[str, str], SessionConfig]:
    """(client SenderCompID, client TargetCompID) -> session; ``ConfigError`` on a duplicate."""
    out: dict[tuple[str, str], SessionConfig] = {}
    for i, entry in enumerate(config.sessions):
        pair = (entry.target_comp_id, entry.sender_comp_id)
        if pair in out:
            raise ConfigError(f"fix.sessions[{i}]: the pair {pair} appears twice")
        out[pair] = SessionConfig(entry.sender_comp_id, entry.target_comp_id, entry.password)
    return out


def session_limits(config: FixConfig) -> SessionLimits:
    if config.min_heartbeat > config.max_heartbeat:
        raise ConfigError("fix.min_heartbeat is above fix.max_heartbeat")
    return SessionLimits(
        min_heartbeat=config.min_heartbeat,
        max_heartbeat=config.max_heartbeat,
        logon_timeout=config.logon_timeout,
        logout_timeout=config.logout_timeout,
    )


def tls_context(config: FixConfig) -> ssl.SSLContext | None:
    """A server context from ``tls_cert``/``tls_key``; ``None`` when neither is set."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise ConfigError("fix.tls_cert and fix.tls_key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"fix.tls_cert/tls_key: cannot load: {exc}") from exc
    return context


def check_fix_config(config: FixConfig) -> None:
    """Everything the types cannot say (raises ``ConfigError`` naming the key)."""
    from dragonflybot.config import parse_listen

    try:
        parse_listen(config.listen)
    except ConfigError as exc:
        raise ConfigError(f"fix.listen: {exc}") from None
    accepted_sessions(config)
    session_limits(config)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("fix.tls_cert and fix.tls_key go together")
