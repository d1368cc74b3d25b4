"""Both WebSocket backends against real sockets on 127.0.0.1: one suite, parametrized."""

from __future__ import annotations

import re
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio_websocket
from wsproto.events import CloseConnection, Pong

from dragonflybot.client import Backend, connect_websocket
from dragonflybot.errors import ConfigError, TransportError

from .ws_peer import RawPeer

StartServer = Callable[..., Awaitable[str]]
StartRaw = Callable[..., Awaitable[str]]


async def until_closed(connection: trio_websocket.WebSocketConnection) -> None:
    """Keep the server side open (discarding messages) until the client goes away."""
    try:
        while True:
            await connection.get_message()
    except trio_websocket.ConnectionClosed:
        pass


async def echo(connection: trio_websocket.WebSocketConnection) -> None:
    try:
        while True:
            await connection.send_message(await connection.get_message())
    except trio_websocket.ConnectionClosed:
        pass


async def test_send_and_receive(backend: Backend, ws_server: StartServer) -> None:
    url = await ws_server(echo)
    async with connect_websocket(url, backend=backend) as stream:
        assert stream.url == url
        await stream.send('{"method":"SUBSCRIBE","id":1}')
        assert await stream.receive() == '{"method":"SUBSCRIBE","id":1}'
        await stream.send("é ✓")
        assert await stream.receive() == "é ✓"


async def test_binary_message_is_bytes(backend: Backend, ws_server: StartServer) -> None:
    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        await connection.send_message(b"\x00\xffraw")
        await until_closed(connection)

    url = await ws_server(handler)
    async with connect_websocket(url, backend=backend) as stream:
        assert await stream.receive() == b"\x00\xffraw"


async def test_many_frames_in_one_write_arrive_in_order(
    backend: Backend, raw_server: StartRaw
) -> None:
    count = 2000

    async def script(peer: RawPeer) -> None:
        await peer.accept()
        await peer.stream.send_all(b"".join(peer.text(f'{{"u":{i}}}') for i in range(count)))
        await peer.until_close()

    url = await raw_server(script)
    async with connect_websocket(url, backend=backend) as stream:
        received = [await stream.receive() for _ in range(count)]
    assert received == [f'{{"u":{i}}}' for i in range(count)]


async def test_upgrade_request_names_host_and_resource(
    backend: Backend, raw_server: StartRaw
) -> None:
    seen: list[tuple[str, str]] = []

    async def script(peer: RawPeer) -> None:
        await peer.accept()
        assert peer.request is not None
        seen.append((peer.request.host, peer.request.target))
        await peer.stream.send_all(peer.text("ok"))
        await peer.until_close()

    url = await raw_server(script)
    async with connect_websocket(url + "?streams=ethbtc@depth", backend=backend) as stream:
        assert await stream.receive() == "ok"
    port = url.split(":")[2].split("/")[0]
    assert seen == [(f"127.0.0.1:{port}", "/raw?streams=ethbtc@depth")]


async def test_fragments_are_reassembled_and_ping_between_answered(
    backend: Backend, raw_server: StartRaw
) -> None:
    pongs: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.accept()
        await peer.stream.send_all(
            peer.text('{"bids":', final=False)
            + peer.ping(b"between")
            + peer.text('[["1.0",', final=False)
            + peer.text('"2.0"]]}', final=True)
            + peer.binary(b"ab", final=False)
            + peer.binary(b"cd", final=True)
        )
        # A fragment in a TCP write of its own: the client must wait for the rest.
        await peer.stream.send_all(peer.text("tail-", final=False))
        await trio.sleep(0.01)
        await peer.stream.send_all(peer.text("end", final=True))
        event = await peer.next_event()
        assert isinstance(event, Pong)
        pongs.append(bytes(event.payload))
        await peer.until_close()

    url = await raw_server(script)
    async with connect_websocket(url, backend=backend) as stream:
        assert await stream.receive() == '{"bids":[["1.0","2.0"]]}'
        assert await stream.receive() == b"abcd"
        assert await stream.receive() == "tail-end"
    assert pongs == [b"between"]


async def test_server_ping_is_answered(backend: Backend, ws_server: StartServer) -> None:
    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        with trio.fail_after(10):
            await connection.ping(b"probe")
        await connection.send_message("pong seen")
        await until_closed(connection)

    url = await ws_server(handler)
    async with connect_websocket(url, backend=backend) as stream:
        with trio.fail_after(10):
            assert await stream.receive() == "pong seen"


async def test_message_over_limit_closes_with_1009(
    backend: Backend, ws_server: StartServer
) -> None:
    codes: trio.MemorySendChannel[int]
    codes, received_codes = trio.open_memory_channel[int](1)

    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        await connection.send_message("small")
        await connection.send_message("x" * 2000)
        try:
            await connection.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            await codes.send(exc.reason.code)

    url = await ws_server(handler)
    async with connect_websocket(url, backend=backend, max_message_size=1024) as stream:
        assert await stream.receive() == "small"
        with pytest.raises(TransportError, match="1024"):
            await stream.receive()
    with trio.fail_after(10):
        assert await received_codes.receive() == 1009


async def test_fragmented_message_over_limit(backend: Backend, raw_server: StartRaw) -> None:
    closes: list[int] = []

    async def script(peer: RawPeer) -> None:
        await peer.accept()
        frames = b"".join(peer.text("y" * 400, final=False) for _ in range(5))
        await peer.stream.send_all(frames + peer.text("", final=True))
        closes.extend(e.code for e in await peer.until_close() if isinstance(e, CloseConnection))

    url = await raw_server(script)
    async with connect_websocket(url, backend=backend, max_message_size=1024) as stream:
        with pytest.raises(TransportError):
            await stream.receive()
    assert closes == [1009]


async def test_server_close_ends_receive(backend: Backend, ws_server: StartServer) -> None:
    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        await connection.send_message("bye")
        await connection.aclose(code=1001, reason="maintenance")

    url = await ws_server(handler)
    async with connect_websocket(url, backend=backend) as stream:
        assert await stream.receive() == "bye"
        with pytest.raises(TransportError, match="1001"):
            await stream.receive()
        with pytest.raises(TransportError):
            await stream.receive()
        with pytest.raises(TransportError):
            await stream.send("anyone?")


async def test_tcp_dropped_without_close_frame(backend: Backend, raw_server: StartRaw) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.accept()
        await peer.stream.send_all(peer.text("last words"))
        # on_connection closes the socket when the script returns: no close frame.

    url = await raw_server(script)
    async with connect_websocket(url, backend=backend) as stream:
        assert await stream.receive() == "last words"
        with pytest.raises(TransportError):
            await stream.receive()


async def test_exit_sends_normal_close(backend: Backend, ws_server: StartServer) -> None:
    codes: trio.MemorySendChannel[int]
    codes, received_codes = trio.open_memory_channel[int](1)

    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        try:
            while True:
                await connection.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            await codes.send(exc.reason.code)

    url = await ws_server(handler)
    async with connect_websocket(url, backend=backend) as stream:
        await stream.send("hello")
    with trio.fail_after(10):
        assert await received_codes.receive() == 1000


async def test_cancelled_block_still_closes_cleanly(
    backend: Backend, ws_server: StartServer
) -> None:
    codes: trio.MemorySendChannel[int]
    codes, received_codes = trio.open_memory_channel[int](1)

    async def handler(connection: trio_websocket.WebSocketConnection) -> None:
        try:
            while True:
                await connection.get_message()
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            await codes.send(exc.reason.code)

    url = await ws_server(handler)
    with trio.CancelScope() as scope:
        async with connect_websocket(url, backend=backend) as stream:
            scope.cancel()
            await stream.receive()
    assert scope.cancelled_caught
    with trio.fail_after(10):
        assert await received_codes.receive() == 1000


async def test_dead_peer_cannot_hang_close(
    backend: Backend, raw_server: StartRaw, autojump_clock: trio.testing.MockClock
) -> None:
    closes: list[int] = []

    async def script(peer: RawPeer) -> None:
        await peer.accept()
        event = await peer.next_event()
        assert isinstance(event, CloseConnection)
        closes.append(event.code)
        await trio.sleep_forever()  # never answers the close frame

    url = await raw_server(script)
    with trio.fail_after(60):
        async with connect_websocket(url, backend=backend, disconnect_timeout=2.0):
            pass
    assert closes == [1000]


async def test_connect_timeout_names_url(
    backend: Backend, autojump_clock: trio.testing.MockClock
) -> None:
    # A listening socket nobody accepts from: TCP connects, the upgrade is never answered.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/silent"
    try:
        with pytest.raises(TransportError, match=re.escape(f"127.0.0.1:{port}/silent")):
            async with connect_websocket(url, backend=backend, connect_timeout=5.0):
                pytest.fail("connected to a server that never answers")
    finally:
        for listener in listeners:
            await listener.aclose()


async def test_connection_refused(backend: Backend) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/"
    with pytest.raises(TransportError, match=re.escape(f"ws://127.0.0.1:{port}/")) as caught:
        async with connect_websocket(url, backend=backend):
            pytest.fail("connected to a closed port")
    assert caught.value.__cause__ is not None


async def test_rejected_handshake(backend: Backend, ws_server: StartServer) -> None:
    url = await ws_server(echo, reject_status=403)
    with pytest.raises(TransportError, match="403"):
        async with connect_websocket(url, backend=backend):
            pytest.fail("connected although the server rejected the upgrade")


async def test_errors_from_the_block_pass_through(backend: Backend, ws_server: StartServer) -> None:
    url = await ws_server(echo)
    with pytest.raises(OSError, match="from the caller"):
        async with connect_websocket(url, backend=backend):
            raise OSError("from the caller")


@pytest.mark.parametrize(
    "url", ["http://example.com/ws", "wss://", "ws://host:notaport/", "binance.com"]
)
async def test_bad_url_is_config_error(backend: Backend, url: str) -> None:
    with pytest.raises(ConfigError):
        async with connect_websocket(url, backend=backend):
            pytest.fail("accepted a bad URL")


async def test_unknown_backend_is_config_error() -> None:
    with pytest.raises(ConfigError, match="backend"):
        async with connect_websocket("ws://127.0.0.1:1/", backend="nope"):  # type: ignore[arg-type]
            pytest.fail("accepted an unknown backend")
