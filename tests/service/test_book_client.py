"""``follow_book``: the project's own client, its errors and its reconnects."""

from __future__ import annotations

import socket

import pytest
import trio

from dragonflybot.aggregator import Fanout
from dragonflybot.client import Backoff
from dragonflybot.errors import TransportError
from dragonflybot.service.book_client import ReceivedSummary, follow_any_book, follow_book

from .conftest import numbered, serving, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_server_is_one_clear_error() -> None:
    port = free_port()
    with pytest.raises(
        TransportError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"
    ):
        await follow_book("127.0.0.1", port, Fanout())


async def test_stream_end_is_reported_with_its_status() -> None:
    books: Fanout[ReceivedSummary] = Fanout()
    async with serving() as h:
        await h.push(numbered("binance", 7))
        with pytest.RaisesGroup(
            pytest.RaisesExc(TransportError, match=r"UNAVAILABLE \(server is shutting down\)")
        ):
            async with trio.open_nursery() as n:
                n.start_soon(follow_book, "127.0.0.1", h.port, books)
                await wait_for(lambda: books.published > 0)
                h.server.shutdown()
    latest = books.latest()
    assert latest is not None and round(latest.summary.bids[0].price) == 7


async def test_a_server_that_vanishes_does_not_hang_the_client() -> None:
    books: Fanout[ReceivedSummary] = Fanout()
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            server_scope = trio.CancelScope()

            async def server() -> None:
                with server_scope:
                    async with serving() as h:
                        await h.push(numbered("binance", 1))
                        port.append(h.port)
                        await trio.sleep_forever()

            port: list[int] = []
            outer.start_soon(server)
            await wait_for(lambda: bool(port))
            with pytest.RaisesGroup(
                pytest.RaisesExc(TransportError, match=r"connection to the server was lost")
            ):
                async with trio.open_nursery() as n:
                    n.start_soon(follow_book, "127.0.0.1", port[0], books)
                    await wait_for(lambda: books.published > 0)
                    server_scope.cancel()  # no graceful shutdown: sockets just close
                    await trio.sleep_forever()


async def test_retry_reconnects_to_a_restarted_server() -> None:
    books: Fanout[ReceivedSummary] = Fanout()
    port = free_port()
    backoff = Backoff(0.01, 0.05)

    async with trio.open_nursery() as n:
        n.start_soon(lambda: follow_book("127.0.0.1", port, books, retry=True, backoff=backoff))
        for value in (1, 2):
            async with serving(port=port) as h:
                await h.push(numbered("binance", value))
                await wait_for(lambda v=value: _best_bid(books) == v)
        n.cancel_scope.cancel()
    latest = books.latest()
    assert latest is not None and latest.number >= 2


def _best_bid(books: Fanout[ReceivedSummary]) -> int | None:
    latest = books.latest()
    return None if latest is None else round(latest.summary.bids[0].price)


async def test_several_servers_are_tried_in_turn_and_a_failed_one_is_left_at_once() -> None:
    """A dead first address costs nothing; when the serving one shuts down the client moves to
    the next (here the first again, restarted) without waiting for the backoff."""
    books: Fanout[ReceivedSummary] = Fanout()
    dead = free_port()
    slow = Backoff(30.0, 30.0)  # a backoff would fail the test's deadline
    with trio.fail_after(10):
        async with serving() as first, serving() as second:
            await first.push(numbered("binance", 1))
            await second.push(numbered("binance", 2))
            servers = [("127.0.0.1", dead), ("127.0.0.1", first.port), ("127.0.0.1", second.port)]
            async with trio.open_nursery() as n:
                n.start_soon(lambda: follow_any_book(servers, books, retry=True, backoff=slow))
                await wait_for(lambda: books.published > 0)
                latest = books.latest()
                assert latest is not None and round(latest.summary.bids[0].price) == 1
                first.server.shutdown()
                await wait_for(
                    lambda: (
                        (b := books.latest()) is not None and round(b.summary.bids[0].price) == 2
                    )
                )
                n.cancel_scope.cancel()


async def test_an_instrument_over_several_servers_falls_back_to_keyrock_per_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Gateways of mixed versions: the one without v1 is followed through Keyrock, and the
    client still asks the next one for the instrument through v1 when it moves there."""
    books: Fanout[ReceivedSummary] = Fanout()
    slow = Backoff(30.0, 30.0)  # a backoff would fail the test's deadline
    with trio.fail_after(10):
        async with serving() as old, serving(v1_instrument="ETH-BTC") as new:
            await old.push(numbered("binance", 1))
            await new.push(numbered("binance", 2))
            servers = [("127.0.0.1", old.port), ("127.0.0.1", new.port)]
            async with trio.open_nursery() as n:
                n.start_soon(
                    lambda: follow_any_book(
                        servers, books, retry=True, backoff=slow, instrument="ETH-BTC"
                    )
                )
                await wait_for(lambda: books.published > 0)
                first = books.latest()
                assert first is not None and not first.v1 and _best_bid(books) == 1
                old.server.shutdown()
                await wait_for(lambda: (b := books.latest()) is not None and b.v1)
                moved = books.latest()
                n.cancel_scope.cancel()
    assert moved is not None and moved.summary.instrument == "ETH-BTC"
    assert round(moved.summary.bids[0].price) == 2
    assert moved.number > first.number  # one numbering across the servers
    assert "no dragonflybot.v1 API" in caplog.text


async def test_without_retry_a_round_of_failures_is_the_last_error() -> None:
    ports = [free_port(), free_port()]
    with pytest.raises(TransportError, match=f"cannot connect to 127.0.0.1:{ports[1]}"):
        await follow_any_book([("127.0.0.1", p) for p in ports], Fanout())


async def test_an_instrument_on_a_server_without_v1_falls_back_to_keyrock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    books: Fanout[ReceivedSummary] = Fanout()
    async with serving() as h:  # BookSummary and health only: v1 is UNIMPLEMENTED
        await h.push(numbered("binance", 7))
        async with trio.open_nursery() as n:
            n.start_soon(lambda: follow_book("127.0.0.1", h.port, books, instrument="ETH-BTC"))
            await wait_for(lambda: books.published > 0)
            n.cancel_scope.cancel()
    latest = books.latest()
    assert latest is not None and not latest.v1
    assert round(latest.summary.bids[0].price) == 7
    assert "no dragonflybot.v1 API" in caplog.text


async def test_a_refused_instrument_is_not_retried() -> None:
    from dragonflybot.errors import ServiceError
    from dragonflybot.service import BookServiceV1, InstrumentSource, SummaryPublisher

    v1 = BookServiceV1([InstrumentSource("ETH-BTC", ("binance",), 5, SummaryPublisher().books)])
    books: Fanout[ReceivedSummary] = Fanout()
    async with serving(extra=[v1]) as h:
        await h.push(numbered("binance", 7))
        with pytest.RaisesGroup(pytest.RaisesExc(ServiceError, match="NOT_FOUND")):
            async with trio.open_nursery() as n:
                n.start_soon(
                    lambda: follow_book(
                        "127.0.0.1", h.port, books, instrument="BTC-USDT", retry=True
                    )
                )
        assert books.published == 0
