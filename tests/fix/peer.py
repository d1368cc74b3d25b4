"""A scripted FIX peer for sans-I/O tests: builds numbered messages, reads replies."""

from __future__ import annotations

from collections.abc import Sequence

from dragonflybot.fix.codec import Field, FrameSplitter, Message, encode, parse_frame
from dragonflybot.fix.session import Event, FixSession, SessionConfig

CLIENT = "CLIENT1"
SERVER = "DRAGONFLY"
SESSIONS = {(CLIENT, SERVER): SessionConfig(SERVER, CLIENT, "secret")}


class Peer:
    """The client side of a session, speaking raw FIX to a ``FixSession``."""

    def __init__(self, session: FixSession) -> None:
        self.session = session
        self.seq = 1
        self.splitter = FrameSplitter()
        self.now = 0.0

    def build(
        self,
        msg_type: str,
        body: Sequence[Field] = (),
        *,
        seq: int | None = None,
        extra_header: Sequence[Field] = (),
    ) -> bytes:
        number = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        header: list[Field] = [
            (35, msg_type),
            (49, CLIENT),
            (56, SERVER),
            (34, str(number)),
            (52, "20260101-00:00:00.000"),
            *extra_header,
        ]
        return encode(header, body)

    def send(
        self,
        msg_type: str,
        body: Sequence[Field] = (),
        *,
        seq: int | None = None,
        extra_header: Sequence[Field] = (),
    ) -> list[Event]:
        data = self.build(msg_type, body, seq=seq, extra_header=extra_header)
        return self.session.receive_data(data, self.now)

    def replies(self) -> list[Message]:
        self.splitter.feed(self.session.data_to_send())
        out = []
        for frame in self.splitter.frames():
            msg = parse_frame(frame)
            assert msg is not None
            out.append(msg)
        return out

    def logon(self, heartbeat: int = 30, password: str = "secret") -> list[Message]:
        self.send("A", [(98, "0"), (108, str(heartbeat)), (554, password)])
        return self.replies()
