"""A QuickFIX initiator (the independent FIX engine) driven from trio tests.

QuickFIX runs its own threads: its callbacks put every message they see on a
thread-safe queue, and the test reads that queue with ``trio.to_thread``.
Blocking QuickFIX calls (start, stop) also run in a worker thread.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import quickfix as fix
import trio

from dragonflybot.fix.codec import Message, parse_frame

DICTIONARY = resources.files("dragonflybot.fix") / "spec" / "FIX44-dragonflybot.xml"


class Recorder(fix.Application):  # type: ignore[misc]
    def __init__(self, password: str | None) -> None:
        super().__init__()
        self.password = password
        self.received: queue.Queue[Message | str] = queue.Queue()
        self.sent_admin: queue.Queue[str] = queue.Queue()
        """Types of the session messages QuickFIX sent (``toAdmin`` runs as it sends)."""
        self.session_id: fix.SessionID | None = None
        self.logged_on = False

    def onCreate(self, session_id: fix.SessionID) -> None:
        self.session_id = session_id

    def onLogon(self, session_id: fix.SessionID) -> None:
        self.logged_on = True
        self.received.put("logon")

    def onLogout(self, session_id: fix.SessionID) -> None:
        self.logged_on = False
        self.received.put("logout")

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        msg_type = fix.MsgType()
        message.getHeader().getField(msg_type)
        if msg_type.getValue() == "A" and self.password is not None:
            message.setField(fix.StringField(554, self.password))
        self.sent_admin.put(msg_type.getValue())

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        self._record(message)

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        self._record(message)

    def _record(self, message: fix.Message) -> None:
        parsed = parse_frame(message.toString().encode("latin-1"))
        assert parsed is not None
        self.received.put(parsed)


class QuickFixClient:
    def __init__(
        self,
        port: int,
        workdir: Path,
        *,
        heartbeat: int = 1,
        password: str | None = "pw",
        sender: str = "CLIENT1",
        target: str = "DRAGONFLY",
    ) -> None:
        settings_path = workdir / "client.cfg"
        settings_path.write_text(
            "[DEFAULT]\n"
            "ConnectionType=initiator\n"
            "ReconnectInterval=600\n"
            "StartTime=00:00:00\nEndTime=00:00:00\n"
            f"HeartBtInt={heartbeat}\n"
            "ResetOnLogon=Y\n"
            "UseDataDictionary=Y\n"
            f"DataDictionary={DICTIONARY}\n"
            f"FileLogPath={workdir / 'log'}\n"
            "[SESSION]\n"
            "BeginString=FIX.4.4\n"
            f"SenderCompID={sender}\nTargetCompID={target}\n"
            f"SocketConnectHost=127.0.0.1\nSocketConnectPort={port}\n"
        )
        self.settings = fix.SessionSettings(str(settings_path))
        self.app = Recorder(password)
        self.initiator = fix.SocketInitiator(
            self.app, fix.MemoryStoreFactory(), self.settings, fix.FileLogFactory(self.settings)
        )

    async def start(self) -> None:
        await trio.to_thread.run_sync(self.initiator.start)

    async def stop(self) -> None:
        await trio.to_thread.run_sync(self.initiator.stop)

    @property
    def session(self) -> fix.Session:
        return fix.Session.lookupSession(self.app.session_id)

    def send(
        self,
        msg_type: str,
        fields: list[tuple[int, str]],
        groups: Sequence[tuple[int, int, list[list[tuple[int, str]]]]] = (),
    ) -> None:
        message = fix.Message()
        message.getHeader().setField(fix.BeginString("FIX.4.4"))
        message.getHeader().setField(fix.MsgType(msg_type))
        for tag, value in fields:
            message.setField(fix.StringField(tag, value))
        for count_tag, delimiter, rows in groups:
            for row in rows:
                group = fix.Group(count_tag, delimiter)
                for tag, value in row:
                    group.setField(fix.StringField(tag, value))
                message.addGroup(group)
        assert fix.Session.sendToTarget(message, self.app.session_id)

    def md_request(
        self,
        req_id: str,
        symbol: str,
        *,
        sub: str = "1",
        update: str = "1",
        depth: str = "0",
        book: str = "0",
    ) -> None:
        fields = [(262, req_id), (263, sub), (264, depth)]
        if sub != "2":
            fields.append((265, update))
        if book != "0":
            fields.append((5000, book))
        self.send(
            "V",
            fields,
            [(267, 269, [[(269, "0")], [(269, "1")]]), (146, 55, [[(55, symbol)]])],
        )

    async def next(self, wanted: str, within: float = 10) -> Message | str:
        """The next recorded message of type ``wanted`` (or the 'logon'/'logout' marker)."""
        with trio.fail_after(within):
            while True:
                item = await trio.to_thread.run_sync(self._get)
                if item is None:
                    continue
                if item == wanted or (isinstance(item, Message) and item.msg_type == wanted):
                    return item

    async def sent(self, wanted: str, within: float = 10) -> None:
        """Wait until QuickFIX has sent a session message of type ``wanted`` (its sends are
        serialized: what the test sends afterwards goes out after it)."""
        with trio.fail_after(within):
            while True:
                item = await trio.to_thread.run_sync(self._get_sent)
                if item == wanted:
                    return

    def _get_sent(self) -> str | None:
        try:
            return self.app.sent_admin.get(timeout=0.2)
        except queue.Empty:
            return None

    def _get(self) -> Message | str | None:
        try:
            return self.app.received.get(timeout=0.2)
        except queue.Empty:
            return None
