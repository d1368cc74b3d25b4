"""The pub/sub side of the Redis protocol (RESP2), sans-I/O: bytes in, message payloads out.

The subscriber reads its channels over a plain socket instead of through
coredis: coredis's pub/sub path (a reader task, a push-message consumer and two
memory streams per message) costs several times what decoding the message does
(docs/scaling.md). The RESP parsing itself is hiredis's (``hiredis.Reader``, the
C parser redis-py uses), commands are packed by ``hiredis.pack_command``; this
module only knows which replies a subscribed connection gets and what they mean.

A subscribed connection receives, as RESP2 arrays: ``message`` / ``smessage``
(channel, payload), the confirmations ``subscribe`` / ``ssubscribe`` (one per
channel), ``pong`` (the reply to ``PING`` in subscribed mode), and
``unsubscribe`` / ``sunsubscribe`` when the server drops a subscription (a
cluster slot moved away from the node). An error reply (``-MOVED`` for a
channel whose slot another node owns, ``-NOAUTH``), a drop, or bytes that are
not RESP end the session with ``BusProtocolError``: the subscriber reconnects,
resubscribes and reads the latest values, which covers whatever was missed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import hiredis

from dragonflybot.errors import BusError

_MESSAGES: Final = frozenset({b"message", b"smessage"})
_CONFIRMATIONS: Final = frozenset({b"subscribe", b"ssubscribe"})
_DROPS: Final = frozenset({b"unsubscribe", b"sunsubscribe"})
_PONG: Final = b"pong"


class BusProtocolError(BusError):
    """The pub/sub connection got an error reply, an unsubscription or malformed bytes."""


def replies(reader: hiredis.Reader, data: bytes | bytearray) -> Iterator[object]:
    """The replies ``data`` completes in ``reader``, in order; malformed bytes raise
    ``BusProtocolError`` (the connection is unusable after that). Both lean readers,
    pub/sub and the publisher's script calls, read through this one loop."""
    reader.feed(data)  # type: ignore[arg-type]  # any buffer; the stub says str | bytes
    while True:
        try:
            reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise BusProtocolError(f"malformed reply from Redis: {exc}") from exc
        if reply is False:
            return
        yield reply


def subscribe_command(channels: Sequence[str], *, sharded: bool) -> bytes:
    """The ``SUBSCRIBE`` (``SSUBSCRIBE`` on a cluster) request for ``channels``."""
    command = ("SSUBSCRIBE" if sharded else "SUBSCRIBE", *channels)
    # hiredis's stub types the argument as a one-element tuple; any length is valid.
    return bytes(hiredis.pack_command(command))  # type: ignore[arg-type]


PING: Final = bytes(hiredis.pack_command(("PING",)))
"""Allowed in subscribed mode; answered with ``pong`` (an array in RESP2)."""


class PubSubReader:
    """One subscribed connection's replies: ``feed`` bytes, get the payloads of messages.

    ``unconfirmed`` counts the subscriptions the server has not confirmed yet
    (set by ``expect_confirmations``); ``pongs`` counts answered ``PING``\\ s.
    """

    __slots__ = ("_reader", "pongs", "unconfirmed")

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.unconfirmed = 0
        self.pongs = 0

    def expect_confirmations(self, count: int) -> None:
        self.unconfirmed += count

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """The payloads of the messages completed by ``data``, in order.

        Raises ``BusProtocolError`` on an error reply, a dropped subscription or
        bytes hiredis cannot parse (the connection is unusable after that).
        """
        out: list[bytes] = []
        for reply in replies(self._reader, data):
            # The hot case first: a 3-element message array with a bytes payload.
            if type(reply) is list and len(reply) == 3:
                kind = reply[0]
                if kind in _MESSAGES:
                    payload = reply[2]
                    if type(payload) is bytes:
                        out.append(payload)
                        continue
            self._control(reply)
        return out

    def _control(self, reply: object) -> None:
        if isinstance(reply, hiredis.ReplyError):
            raise BusProtocolError(f"Redis refused a pub/sub request: {reply}")
        if isinstance(reply, bytes) and reply.lower() == _PONG:
            self.pongs += 1  # a PONG outside subscribed mode (a RESP3-style reply)
            return
        if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
            kind = reply[0]
            if kind in _CONFIRMATIONS:
                self.unconfirmed -= 1
                return
            if kind == _PONG:
                self.pongs += 1
                return
            if kind in _DROPS:
                channel = reply[1] if len(reply) > 1 else b"?"
                raise BusProtocolError(f"Redis dropped the subscription to {channel!r}")
        shown = repr(reply)
        raise BusProtocolError(f"unexpected reply on a subscribed connection: {shown[:120]}")
