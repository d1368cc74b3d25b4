"""A FIX server over in-test fan-outs, and a raw-socket FIX client (simplefix framing)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from dragonflybot.aggregator.fanout import Fanout
from dragonflybot.aggregator.liquidity import LiquidityAggregator, LiquidityState
from dragonflybot.core.merge import Consolidated, merge
from dragonflybot.core.view import VenueView
from dragonflybot.fix.codec import Field, FrameSplitter, Message, encode, parse_frame
from dragonflybot.fix.server import FixInstrument, FixServer
from dragonflybot.fix.session import SessionConfig, SessionLimits

CLIENT = "CLIENT1"
SERVER = "DRAGONFLY"
DEPTH = 10


class Market:
    """One instrument's two fan-outs, fed by publishing venue views."""

    def __init__(self) -> None:
        self.books: Fanout[Consolidated] = Fanout()
        self.liquidity: Fanout[LiquidityState] = Fanout()
        self._ladder = LiquidityAggregator(DEPTH, self.liquidity)
        self._views: dict[str, VenueView] = {}

    def publish(self, *views: VenueView) -> Consolidated:
        for view in views:
            self._views[view.venue] = view
        book = merge(self._views.values(), DEPTH)
        self.books.publish(book)
        self._ladder.apply_batch(list(views))
        return book

    def instrument(self, name: str = "ETH-BTC") -> FixInstrument:
        return FixInstrument(name, self.books, lambda book: book, DEPTH, self.liquidity, DEPTH)


def make_server(market: Market, **kw: object) -> FixServer:
    accepted = {(CLIENT, SERVER): SessionConfig(SERVER, CLIENT, "pw")}
    return FixServer(
        {"ETH-BTC": market.instrument()},
        accepted,
        "127.0.0.1",
        0,
        limits=SessionLimits(logout_timeout=2),
        **kw,  # type: ignore[arg-type]
    )


class RawClient:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.seq = 1
        self.splitter = FrameSplitter()
        self.pending: list[Message] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(
        self, msg_type: str, body: Sequence[Field] = (), *, seq: int | None = None
    ) -> None:
        number = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        header: list[Field] = [
            (35, msg_type),
            (49, CLIENT),
            (56, SERVER),
            (34, str(number)),
            (52, "20260101-00:00:00.000"),
        ]
        await self.stream.send_all(encode(header, body))

    async def receive(self, within: float = 5) -> Message:
        with trio.fail_after(within):
            while not self.pending:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError("server closed the connection")
                self.splitter.feed(data)
                for frame in self.splitter.frames():
                    msg = parse_frame(frame)
                    assert msg is not None
                    self.pending.append(msg)
            return self.pending.pop(0)

    async def receive_type(self, msg_type: str, within: float = 5) -> Message:
        """The next message of ``msg_type``, skipping heartbeats and others."""
        while True:
            msg = await self.receive(within)
            if msg.msg_type == msg_type:
                return msg

    async def logon(self, heartbeat: int = 30) -> Message:
        await self.send("A", [(98, "0"), (108, str(heartbeat)), (554, "pw")])
        return await self.receive()

    async def subscribe(
        self,
        req_id: str,
        *,
        update: str = "1",
        book: str = "0",
        symbol: str = "ETH-BTC",
        sub: str = "1",
    ) -> None:
        await self.send(
            "V",
            [
                (262, req_id),
                (263, sub),
                (264, "0"),
                (265, update),
                (5000, book),
                (267, "2"),
                (269, "0"),
                (269, "1"),
                (146, "1"),
                (55, symbol),
            ],
        )
