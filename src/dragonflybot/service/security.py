"""Who may talk to the gRPC server: TLS contexts and bearer-token checks (issue 13).

TLS: the server presents ``cert_file``/``key_file``, offers only HTTP/2 through
ALPN (gRPC clients require it), TLS 1.2 at least; with ``client_ca_file`` every
client must present a certificate signed by one of those CAs (mutual TLS), or the
handshake fails before any HTTP/2 byte is read. The client side trusts a given
CA file (a private CA, as ``trustme`` makes in tests) or the system's.

Tokens: the server compares ``authorization: Bearer <token>`` with the token file's
content in constant time (``hmac.compare_digest``), so the time of an answer says
nothing about how much of a guess was right. A token is never logged, never put in
an error message, and never echoed: a refusal says only "missing" or "invalid".
Health checks stay open (load balancers and orchestrators probe without secrets,
and a health answer reveals nothing); everything else, reflection included (it
describes the whole API), needs the token.

Every problem with a file (missing, unreadable, not PEM, a key that does not
match the certificate, an empty or malformed token) is a ``ConfigError`` naming
the key and the file, raised at start-up, never at the first client.
"""

from __future__ import annotations

import hmac
import os
import re
import ssl
from collections.abc import Iterable
from typing import Final

from dragonflybot.config import AppConfig, AuthConfig, TlsConfig
from dragonflybot.errors import ConfigError
from dragonflybot.service.grpcwire import Rejection
from dragonflybot.service.purerpc_adapter import StatusCode

OPEN_SERVICES: Final = frozenset({"grpc.health.v1.Health"})
"""Services served without a token when auth is on."""

ALPN: Final = ["h2"]

_TOKEN: Final = re.compile(r"^[A-Za-z0-9._~+/=-]{16,4096}$")
"""RFC 6750's ``b64token`` characters; at least 16 of them (a short token is guessable)."""

_BEARER: Final = b"bearer "


def server_security(config: AppConfig) -> tuple[ssl.SSLContext | None, TokenCheck | None]:
    """The TLS context and token check of ``[tls]`` and ``[auth]`` (each ``None`` when
    the table is absent), loaded once at start-up; ``ConfigError`` for a bad file."""
    tls = server_tls_context(config.tls) if config.tls is not None else None
    auth = TokenCheck.from_config(config.auth) if config.auth is not None else None
    return tls, auth


def server_tls_context(config: TlsConfig, *, key: str = "tls") -> ssl.SSLContext:
    """An ``SSLContext`` for the server side; ``ConfigError`` naming the key otherwise."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    for name, path in (("cert_file", config.cert_file), ("key_file", config.key_file)):
        if not os.path.isfile(path):
            raise ConfigError(f"{key}.{name}: {path}: no such file")
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{key}.cert_file/key_file: cannot load {config.cert_file} with "
            f"{config.key_file}: {_reason(exc)}"
        ) from None
    if config.client_ca_file is not None:
        _load_ca(context, config.client_ca_file, f"{key}.client_ca_file")
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_tls_context(
    ca_file: str | None,
    *,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` (or the system's CAs), optionally with a
    client certificate for servers that require one; ``ConfigError`` on a bad file."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    if ca_file is not None:
        _load_ca(context, ca_file, "--tls-ca")
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--tls-cert: cannot load {cert_file}: {_reason(exc)}") from None
    return context


def _load_ca(context: ssl.SSLContext, path: str, key: str) -> None:
    try:
        context.load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path}: no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{key}: cannot load {path}: {_reason(exc)}") from None


def load_token(path: str, *, key: str = "auth.token_file") -> bytes:
    """The token in ``path`` (surrounding whitespace stripped); ``ConfigError`` otherwise.

    The error never contains the file's content.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(8192)
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path}: the token must be ASCII") from None
    if not _TOKEN.match(token):
        raise ConfigError(
            f"{key}: {path}: the token must be one line of 16 to 4096 characters "
            "from A-Z a-z 0-9 . _ ~ + / = -"
        )
    return token.encode("ascii")


class TokenCheck:
    """Checks a request's ``authorization`` header against the server's token."""

    __slots__ = ("_open", "_token")

    def __init__(self, token: bytes, open_services: Iterable[str] = OPEN_SERVICES) -> None:
        self._token = token
        self._open = frozenset(open_services)

    @classmethod
    def from_config(cls, config: AuthConfig) -> TokenCheck:
        return cls(load_token(config.token_file))

    def check(self, service: str, headers: Iterable[tuple[bytes, bytes]]) -> Rejection | None:
        """``None`` when the call may go on, else UNAUTHENTICATED (never naming the token)."""
        if service in self._open:
            return None
        given = None
        for name, value in headers:
            if name == b"authorization":
                given = value
                break
        if given is None:
            return Rejection(StatusCode.UNAUTHENTICATED, "missing bearer token")
        if len(given) <= len(_BEARER) or given[: len(_BEARER)].lower() != _BEARER:
            return Rejection(StatusCode.UNAUTHENTICATED, "authorization must be Bearer <token>")
        if not hmac.compare_digest(given[len(_BEARER) :].strip(), self._token):
            return Rejection(StatusCode.UNAUTHENTICATED, "invalid bearer token")
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
