"""``dragonflybot health``: ask a server's ``grpc.health.v1.Health/Check``, for scripts and probes.

    dragonflybot health --server 127.0.0.1:50051
    dragonflybot health --server 127.0.0.1:50051 --service dragonflybot.v1.BookService

Prints the status (``SERVING``, ``NOT_SERVING``) and exits 0 only when SERVING, 1
otherwise; a server that cannot be reached or does not know the service is one
``error:`` line and exit 1; a usage mistake, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio
from purerpc import RpcFailedError

from dragonflybot.cli import options, security_flags
from dragonflybot.cli.common import EXIT_FAILURE, EXIT_OK, OneLineParser, run
from dragonflybot.config import DEFAULT_LISTEN, format_listen, parse_listen
from dragonflybot.errors import TransportError
from dragonflybot.service.book_client import connection_lost
from dragonflybot.service.channel import ChannelSecurity, open_channel
from dragonflybot.service.messages import SERVING, HealthCheckRequest, HealthCheckResponse
from dragonflybot.service.proto.health_grpc import HealthStub

PROG = "dragonflybot health"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Ask a dragonflybot server whether it is serving (grpc.health.v1): "
        "exit 0 when SERVING, 1 otherwise.",
    )
    options.add_version_flag(parser)
    parser.add_argument(
        "--server",
        type=options.listen_address,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"server address (default: {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help="a service name such as dragonflybot.v1.BookService or "
        "orderbook.OrderbookAggregator (default: the whole server)",
    )
    parser.add_argument(
        "--timeout",
        type=options.seconds,
        default=5.0,
        metavar="S",
        help="seconds for the whole check (default: 5)",
    )
    security_flags.add_client_flags(parser)
    return parser


async def check(
    host: str,
    port: int,
    service: str,
    within: float,
    security: ChannelSecurity | None = None,
) -> int:
    """The server's status code for ``service``; ``TransportError`` when it cannot say.

    ``security``: TLS for a server behind ``[tls]``; health is open to callers
    without a token, but one given is sent like every client sends it.
    """
    where = format_listen(host, port)
    with trio.move_on_after(within) as scope:
        try:
            async with open_channel(
                host, port, connect_timeout=within, security=security
            ) as channel:
                stub = HealthStub(channel)  # type: ignore[no-untyped-call]
                try:
                    response = await stub.Check(
                        HealthCheckRequest(service=service), metadata=channel.metadata
                    )
                except RpcFailedError as exc:
                    status = exc.status
                    raise TransportError(
                        f"{where}: {status.status_code.name} ({status.status_message})"
                    ) from exc
                code: int = response.status
                return code
        except BaseException as exc:
            # A server that hangs up (plaintext to a TLS port, a wrong client
            # certificate) is an answer-less check, not a crash.
            if connection_lost(exc):
                raise TransportError(
                    f"{where}: the server closed the connection (is it TLS, or does it want "
                    "a client certificate?)"
                ) from exc
            raise
    assert scope.cancelled_caught
    raise TransportError(f"{where}: no answer within {within:g} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    host, port = parse_listen(args.server)

    async def probe() -> int:
        security = security_flags.client_security(args)
        status = await check(host, port, args.service, args.timeout, security)
        print(HealthCheckResponse.ServingStatus.Name(status))
        return EXIT_OK if status == SERVING else EXIT_FAILURE

    return run(PROG, probe)


if __name__ == "__main__":
    sys.exit(main())
