"""The publisher's command side of the Redis protocol (RESP2), sans-I/O: one pipelined script.

The publisher's hot path is one ``EVALSHA`` per batch (``SET`` the latest values
and ``PUBLISH`` them). Through coredis a round trip cost the hop about eight
times what the same command costs on a bare socket (docs/scaling.md), so the
publisher sends it over its own trio socket; this module holds what that socket
says and expects, without any I/O. hiredis packs the commands and parses the
replies (as for the subscriber's ``pubsub_wire``).

The connection is pipelined: a batch's call is sent without waiting for the
previous one's reply, and every reply is matched, in order, to what asked for it.
A script cache that was emptied (``SCRIPT FLUSH``, a restart the connection did
not notice, a failover to a replica that never loaded it) answers ``NOSCRIPT``:
the first such reply queues ``SCRIPT LOAD`` and then the failed call *and every
later call already in flight*, in their order. Those later calls necessarily
fail too (nothing between them and the ``SCRIPT LOAD`` loads the script, unless
another client does), so the order in which batches reach Redis is kept: a
subject's latest value never goes back to an older one. If another client did
load the script meanwhile, a later call may run before the retries and then
again after them; consumers drop the repeated and the briefly restored older
message as not newer (``sequence``), and the key ends at the newest value.

Any other error reply, a reply nobody asked for, or a reply of the wrong shape
raises ``BusProtocolError``: the session is over and the publisher reconnects,
which writes every subject's latest value again.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from enum import Enum, auto
from typing import Final

import attrs
import hiredis

from dragonflybot.bus.pubsub_wire import BusProtocolError, replies

_OK: Final = b"OK"
_NOSCRIPT: Final = "NOSCRIPT"


def pack(*args: str | bytes | int) -> bytes:
    """One command in RESP (hiredis's packer; its stub types the argument as a 1-tuple)."""
    return bytes(hiredis.pack_command(args))  # type: ignore[arg-type]


class _Kind(Enum):
    SELECT = auto()
    LOAD = auto()
    CALL = auto()
    RETRY = auto()


@attrs.define(slots=True)
class _Asked:
    """A request on the wire whose reply has not come back yet."""

    kind: _Kind
    count: int = 0
    """The batch's number of subjects (what the script returns)."""
    args: tuple[bytes, ...] = ()
    """The script call's arguments after the SHA (kept to send it again)."""
    retried: bool = False
    """A NOSCRIPT retry of this call is already queued behind a SCRIPT LOAD."""


@attrs.define(slots=True)
class Replies:
    """What one ``feed`` completed: batch sizes acknowledged, in order, and bytes to send
    (``SCRIPT LOAD`` plus the calls to retry) before anything else is sent."""

    acknowledged: list[int] = attrs.field(factory=list)
    resend: bytes = b""
    reloads: int = 0


class ScriptPipeline:
    """One connection's script calls in flight, and the replies they get.

    The socket owner sends exactly the bytes returned by ``handshake`` and ``call``
    (and ``Replies.resend``), in the order they were returned, and feeds every byte
    received to ``feed``.
    """

    __slots__ = ("_asked", "_reader", "script", "sha")

    def __init__(self, script: str) -> None:
        self.script = script.encode()
        self.sha = hashlib.sha1(self.script).hexdigest().encode()
        self._reader = hiredis.Reader()
        self._asked: deque[_Asked] = deque()

    @property
    def in_flight(self) -> int:
        """Requests sent whose replies have not arrived."""
        return len(self._asked)

    def handshake(self, db: int) -> bytes:
        """Select the database (when not 0) and load the script: a fresh connection's start."""
        out = b""
        if db:
            self._asked.append(_Asked(_Kind.SELECT))
            out += pack("SELECT", db)
        return out + self._load()

    def call(self, keys: Sequence[str], args: Sequence[bytes | str]) -> bytes:
        """The ``EVALSHA`` of one batch (``keys`` and ``args`` as the script takes them)."""
        encoded = (
            str(len(keys)).encode(),
            *(k.encode() for k in keys),
            *(a.encode() if isinstance(a, str) else a for a in args),
        )
        self._asked.append(_Asked(_Kind.CALL, len(keys), encoded))
        return pack(b"EVALSHA", self.sha, *encoded)

    def feed(self, data: bytes | bytearray) -> Replies:
        """Match the replies completed by ``data``; raises ``BusProtocolError`` when one
        ends the session (an error reply, a reply out of turn, malformed bytes)."""
        out = Replies()
        for reply in replies(self._reader, data):
            if not self._asked:
                raise BusProtocolError(f"a reply nobody asked for: {_shown(reply)}")
            asked = self._asked.popleft()
            if asked.kind is _Kind.CALL or asked.kind is _Kind.RETRY:
                self._script_reply(asked, reply, out)
            elif asked.kind is _Kind.LOAD:
                if reply != self.sha:
                    raise BusProtocolError(f"SCRIPT LOAD answered {_shown(reply)}")
            elif reply != _OK:
                raise BusProtocolError(f"SELECT answered {_shown(reply)}")
        return out

    def _script_reply(self, asked: _Asked, reply: object, out: Replies) -> None:
        if type(reply) is int and reply == asked.count:
            # A call whose retry is queued counts once, when the retry answers.
            if not asked.retried:
                out.acknowledged.append(asked.count)
            return
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith(_NOSCRIPT):
            if asked.kind is _Kind.RETRY:
                raise BusProtocolError("the publish script vanished again right after loading")
            if asked.retried:
                return  # expected: its retry is already queued
            out.reloads += 1
            waiting = [a for a in self._asked if a.kind is _Kind.CALL and not a.retried]
            out.resend += self._load() + self._retry(asked)
            for later in waiting:
                out.resend += self._retry(later)
            return
        if isinstance(reply, hiredis.ReplyError):
            raise BusProtocolError(f"Redis refused the publish script: {reply}")
        raise BusProtocolError(
            f"the publish script answered {_shown(reply)}, expected {asked.count}"
        )

    def _load(self) -> bytes:
        self._asked.append(_Asked(_Kind.LOAD))
        return pack("SCRIPT", "LOAD", self.script)

    def _retry(self, asked: _Asked) -> bytes:
        asked.retried = True
        self._asked.append(_Asked(_Kind.RETRY, asked.count, asked.args))
        return pack(b"EVALSHA", self.sha, *asked.args)


def _shown(reply: object) -> str:
    return repr(reply)[:120]
