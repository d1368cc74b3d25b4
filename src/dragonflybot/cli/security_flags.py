"""The TLS and token flags of the server and the client (one place, so both agree).

Server: ``--tls-cert``/``--tls-key`` (both or neither), ``--tls-client-ca`` (clients
must present a certificate it signed), ``--token-file`` (calls need ``authorization:
Bearer <token>``, health excepted). Flags override the config's ``[tls]``/``[auth]``.

Client: ``--tls-ca`` (speak TLS, trusting that CA; ``--tls`` alone trusts the
system's CAs), ``--tls-cert``/``--tls-key`` (a client certificate, for servers that
ask for one), ``--token-file``. A bad file is one line naming the flag, exit 2.
"""

from __future__ import annotations

import argparse

import msgspec

from dragonflybot.config import AppConfig, AuthConfig, TlsConfig
from dragonflybot.errors import ConfigError
from dragonflybot.service.channel import ChannelSecurity
from dragonflybot.service.security import client_tls_context, load_token


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS and authentication (also [tls] and [auth] in --config)")
    group.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate")
    group.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    group.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by these PEM CAs (mutual TLS)",
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'authorization: Bearer <token>' (the file's content) on every call "
        "but health checks",
    )


def apply_server_flags(config: AppConfig, args: argparse.Namespace) -> AppConfig:
    """``config`` with the flags' ``[tls]``/``[auth]``; ``ConfigError`` for a half pair."""
    tls = config.tls
    if args.tls_cert is not None or args.tls_key is not None:
        if args.tls_cert is None or args.tls_key is None:
            raise ConfigError("--tls-cert and --tls-key go together")
        client_ca = tls.client_ca_file if tls is not None else None
        tls = TlsConfig(cert_file=args.tls_cert, key_file=args.tls_key, client_ca_file=client_ca)
    if args.tls_client_ca is not None:
        if tls is None:
            raise ConfigError("--tls-client-ca needs TLS: add --tls-cert and --tls-key")
        tls = msgspec.structs.replace(tls, client_ca_file=args.tls_client_ca)
    auth = config.auth
    if args.token_file is not None:
        auth = AuthConfig(token_file=args.token_file)
    return msgspec.structs.replace(config, tls=tls, auth=auth)


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS and authentication")
    group.add_argument("--tls", action="store_true", help="speak TLS, trusting the system's CAs")
    group.add_argument(
        "--tls-ca", metavar="FILE", help="speak TLS, trusting the server's PEM CA in FILE"
    )
    group.add_argument(
        "--tls-cert", metavar="FILE", help="PEM client certificate, for servers that ask for one"
    )
    group.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    group.add_argument(
        "--token-file", metavar="FILE", help="send the token in FILE as a bearer token"
    )


def client_security(args: argparse.Namespace) -> ChannelSecurity:
    """What the flags ask for; ``ConfigError`` (one line, naming the flag) otherwise."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    context = None
    if args.tls or args.tls_ca is not None or args.tls_cert is not None:
        context = client_tls_context(args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    token = load_token(args.token_file, key="--token-file") if args.token_file else None
    return ChannelSecurity(context, token)
