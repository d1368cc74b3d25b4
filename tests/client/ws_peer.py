"""The server end of a WebSocket connection driven frame by frame (sans-I/O wsproto).

For what a library server will not do on request: many frames in one TCP write, fragments with a
ping in between, dropping TCP without a close frame, never answering a close.
"""

from __future__ import annotations

from collections import deque

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)


class RawPeer:
    """The server end of one connection; the test script decides every byte it sends."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self._events: deque[Event] = deque()
        self.request: Request | None = None

    async def next_event(self) -> Event | None:
        """The next event from the client, or None once it closed TCP."""
        while not self._events:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.ws.receive_data(bytes(data))
            self._events.extend(self.ws.events())
        return self._events.popleft()

    async def accept(self) -> None:
        event = await self.next_event()
        assert isinstance(event, Request), event
        self.request = event
        await self.stream.send_all(self.ws.send(AcceptConnection()))

    async def until_close(self) -> list[Event]:
        """Collect the client's events until its close frame, answer it; return the events."""
        seen: list[Event] = []
        while (event := await self.next_event()) is not None:
            seen.append(event)
            if isinstance(event, CloseConnection):
                await self.stream.send_all(self.ws.send(event.response()))
                break
        return seen

    def text(self, data: str, *, final: bool = True) -> bytes:
        return self.ws.send(TextMessage(data=data, message_finished=final))

    def binary(self, data: bytes, *, final: bool = True) -> bytes:
        return self.ws.send(BytesMessage(data=data, message_finished=final))

    def ping(self, payload: bytes) -> bytes:
        return self.ws.send(Ping(payload=payload))
