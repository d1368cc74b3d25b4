"""The listener: exactly the configured address, a taken port is an error (not a shared port)."""

from __future__ import annotations

import errno
import socket

import pytest
import trio

from dragonflybot.errors import ServiceError
from dragonflybot.service import GrpcServer


def _listening_socket(*, reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    if reuse_port:
        # What purerpc's own Server does: with it, a second server would silently share.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("reuse_port", [False, True])
async def test_port_in_use_is_a_service_error(reuse_port: bool) -> None:
    with _listening_socket(reuse_port=reuse_port) as taken:
        port = taken.getsockname()[1]
        server = GrpcServer([], "127.0.0.1", port)
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port}: address already in use"):
            await server.serve()


async def test_unknown_host_is_a_service_error() -> None:
    server = GrpcServer([], "no-such-host.invalid", 0)
    with pytest.raises(ServiceError, match=r"cannot listen on no-such-host\.invalid:0"):
        await server.serve()


async def test_binds_only_the_configured_address_and_reports_the_port() -> None:
    server = GrpcServer([], "127.0.0.1", 0)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        assert port == server.port != 0
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.aclose()
        # 127.0.0.2 is loopback too: a server bound to every interface would accept it.
        with pytest.raises(OSError) as info:
            await trio.open_tcp_stream("127.0.0.2", port)
        assert info.value.errno in (errno.ECONNREFUSED, None)
        # And nobody can quietly start a second server on the same port.
        with pytest.raises(ServiceError, match="already in use"):
            await GrpcServer([], "127.0.0.1", port).serve()
        server.shutdown()
    assert server.connection_count == 0
