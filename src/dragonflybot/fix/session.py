"""The FIX 4.4 session layer of the acceptor, sans-I/O (bytes and times in, events out).

Like h11 or wsproto, ``FixSession`` owns no socket and no clock: the connection
task feeds it received bytes with ``receive_data(data, now)``, calls ``tick(now)``
when ``next_deadline()`` passes, sends what ``data_to_send()`` returns, and
closes the connection after a ``Disconnect`` event. Everything FIX's session
rules require is decided here, so it is tested without sockets or real time.

Rules (docs/fix.md, "Session rules"):

- The first message must be a Logon (35=A) from a configured
  SenderCompID/TargetCompID pair, with the pair's password (554) if one is set,
  EncryptMethod 0 and a HeartBtInt within bounds; anything else ends the
  connection (a Logout with the reason when the message was a Logon).
- Sequence numbers start at 1 on every connection (market data has nothing
  worth replaying). Too low without PossDupFlag: Logout with the reason. Too
  high: one ResendRequest (7=expected, 16=0) and the message is not processed
  (the peer resends it). A peer's ResendRequest is answered with one
  SequenceReset-GapFill to our next number: stale market data is never replayed.
- Heartbeat every HeartBtInt of our silence; a TestRequest after HeartBtInt
  plus 20% of the peer's silence, and Logout if that goes unanswered for
  another HeartBtInt.
- A well-framed message that breaks a rule (missing or malformed tag) gets a
  Reject (35=3) with RefSeqNum, RefTagID, RefMsgType, SessionRejectReason and
  Text; a frame with a bad BodyLength or CheckSum is dropped and counted.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

import attrs

from dragonflybot.fix.codec import BEGIN_STRING, Field, FrameSplitter, Message, encode, parse_frame

ADMIN_TYPES: Final = frozenset({"0", "1", "2", "3", "4", "5", "A"})
TEST_REQUEST_GRACE: Final = 1.2
"""A TestRequest goes out after HeartBtInt x this much silence from the peer."""


class RejectReason(enum.IntEnum):
    """SessionRejectReason (373) values used here."""

    INVALID_TAG = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_MESSAGE = 2
    VALUE_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMPID_PROBLEM = 9
    INVALID_MSGTYPE = 11
    TAG_REPEATED = 13
    INCORRECT_NUM_IN_GROUP = 16
    OTHER = 99


@attrs.frozen
class SessionConfig:
    """What an acceptor session needs to know before the first byte."""

    sender_comp_id: str
    """Ours (the peer's TargetCompID, 56)."""
    target_comp_id: str
    """The peer's SenderCompID (49)."""
    password: str | None = None


@attrs.frozen
class SessionLimits:
    min_heartbeat: int = 1
    max_heartbeat: int = 300
    logon_timeout: float = 10.0
    """Seconds a new connection has to send its Logon."""
    logout_timeout: float = 5.0
    """Seconds the peer has to answer our Logout before the connection is closed."""


# --- events --------------------------------------------------------------------------------


@attrs.frozen
class LoggedOn:
    sender_comp_id: str
    target_comp_id: str
    heartbeat: int


@attrs.frozen
class AppMessage:
    """A sequenced application message (not an admin one) for the application layer."""

    message: Message
    seq: int


@attrs.frozen
class ResendAnswered:
    """The peer asked for a resend and was sent a gap fill: it missed messages."""

    begin: int
    end: int


@attrs.frozen
class Disconnect:
    """Close the connection once ``data_to_send()`` has been sent."""

    reason: str


Event = LoggedOn | AppMessage | ResendAnswered | Disconnect


class State(enum.Enum):
    AWAITING_LOGON = "awaiting_logon"
    ACTIVE = "active"
    LOGOUT_SENT = "logout_sent"
    CLOSED = "closed"


@attrs.define
class SessionStats:
    received: int = 0
    sent: int = 0
    garbled: int = 0
    """Frames dropped for a bad BodyLength or CheckSum, or fields simplefix could not parse."""
    rejects_sent: int = 0
    resend_requests_sent: int = 0
    gap_fills_sent: int = 0
    test_requests_sent: int = 0
    heartbeats_sent: int = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


def sending_time(when: datetime) -> str:
    """UTCTimestamp with milliseconds, as FIX 4.4 writes it."""
    return when.strftime("%Y%m%d-%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


class _Rejected(Exception):
    """Internal: the message breaks a rule; carries the Reject's fields."""

    def __init__(self, reason: RejectReason, text: str, tag: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.tag = tag


class FixSession:
    """One acceptor-side FIX 4.4 session over one connection."""

    def __init__(
        self,
        accepted: Mapping[tuple[str, str], SessionConfig],
        now: float,
        *,
        limits: SessionLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """``accepted`` maps (peer SenderCompID, peer TargetCompID) to the session config."""
        self._accepted = accepted
        self._limits = limits or SessionLimits()
        self._clock = clock
        self._splitter = FrameSplitter()
        self._out: list[bytes] = []
        self.state = State.AWAITING_LOGON
        self.config: SessionConfig | None = None
        self.heartbeat = 0
        self.next_in = 1
        """The MsgSeqNum expected next from the peer."""
        self.next_out = 1
        """The MsgSeqNum of our next message."""
        self._highest_seen = 0
        self._resend_pending = False
        self._connected_at = now
        self._last_received = now
        self._last_sent = now
        self._test_request: tuple[str, float] | None = None
        self._test_counter = 0
        self._logout_sent_at = 0.0
        self.stats = SessionStats()

    # --- public API ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once a ``Disconnect`` was returned: the connection must be closed."""
        return self.state is State.CLOSED

    def data_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def receive_data(self, data: bytes | bytearray, now: float) -> list[Event]:
        """Feed received bytes; the events they cause, in order."""
        if self.state is State.CLOSED:
            return []
        splitter = self._splitter
        splitter.feed(data)
        events: list[Event] = []
        for frame in splitter.frames():
            message = parse_frame(frame)
            if message is None:
                splitter.garbled += 1
                continue
            self.stats.received += 1
            self._last_received = now
            self._on_message(message, now, events)
            if self.closed:
                break
        self.stats.garbled = splitter.garbled
        return events

    def next_deadline(self) -> float:
        """When ``tick`` must next be called (a heartbeat, a test request, a timeout)."""
        if self.state is State.AWAITING_LOGON:
            return self._connected_at + self._limits.logon_timeout
        if self.state is State.LOGOUT_SENT:
            return self._logout_sent_at + self._limits.logout_timeout
        if self.state is State.CLOSED:
            return float("inf")
        hb = self.heartbeat
        due = self._last_sent + hb
        if self._test_request is None:
            return min(due, self._last_received + hb * TEST_REQUEST_GRACE)
        return min(due, self._test_request[1] + hb)

    def tick(self, now: float) -> list[Event]:
        """Run the timers: heartbeats, test requests, logon and logout timeouts."""
        state = self.state
        if state is State.AWAITING_LOGON:
            if now >= self._connected_at + self._limits.logon_timeout:
                return [self._close("no Logon received in time")]
            return []
        if state is State.LOGOUT_SENT:
            if now >= self._logout_sent_at + self._limits.logout_timeout:
                return [self._close("Logout not answered in time")]
            return []
        if state is State.CLOSED:
            return []
        hb = self.heartbeat
        if self._test_request is not None:
            if now >= self._test_request[1] + hb:
                closed = self.logout("heartbeat timeout: TestRequest not answered", now)
                return [closed] if closed is not None else []
        elif now >= self._last_received + hb * TEST_REQUEST_GRACE:
            self._test_counter += 1
            test_id = f"TEST{self._test_counter}"
            self._test_request = (test_id, now)
            self._send("1", [(112, test_id)], now)
            self.stats.test_requests_sent += 1
        if now >= self._last_sent + hb:
            self._send("0", [], now)
            self.stats.heartbeats_sent += 1
        return []

    def send(self, msg_type: str, body: Iterable[Field], now: float) -> None:
        """Queue an application message (ignored unless the session is active)."""
        if self.state is State.ACTIVE:
            self._send(msg_type, body, now)

    def reject(
        self,
        ref: AppMessage,
        reason: RejectReason,
        text: str,
        now: float,
        *,
        tag: int | None = None,
    ) -> None:
        """Session-level Reject (35=3) of an application message the application found bad."""
        self._reject(ref.seq, ref.message.msg_type, reason, text, tag, now)

    def logout(self, text: str, now: float) -> Disconnect | None:
        """Begin a Logout of our own; the connection closes when the peer answers or times out.

        Returns a ``Disconnect`` when there is no session to log out of (the caller closes).
        """
        if self.state is State.ACTIVE:
            self._send("5", [(58, text)], now)
            self.state = State.LOGOUT_SENT
            self._logout_sent_at = now
            return None
        if self.state is State.LOGOUT_SENT:
            return None
        return self._close(text)

    # --- internals -----------------------------------------------------------------------

    def _send(self, msg_type: str, body: Iterable[Field], now: float, *, seq: int = 0) -> None:
        config = self.config
        assert config is not None, "sending before Logon"
        own_seq = seq == 0
        header: list[Field] = [
            (35, msg_type),
            (49, config.sender_comp_id),
            (56, config.target_comp_id),
            (34, str(self.next_out if own_seq else seq)),
            (52, sending_time(self._clock())),
        ]
        if not own_seq:
            header += [(43, "Y"), (122, header[4][1])]
        self._out.append(encode(header, body))
        if own_seq:
            self.next_out += 1
        self._last_sent = now
        self.stats.sent += 1

    def _close(self, reason: str) -> Disconnect:
        self.state = State.CLOSED
        return Disconnect(reason)

    def _hard_logout(self, text: str, now: float) -> Disconnect:
        """Logout with the reason, then close at once (the session cannot go on)."""
        if self.config is not None:
            self._send("5", [(58, text)], now)
        return self._close(text)

    def _reject(
        self,
        ref_seq: int,
        ref_type: str | None,
        reason: RejectReason,
        text: str,
        tag: int | None,
        now: float,
    ) -> None:
        body: list[Field] = [(45, str(ref_seq))]
        if tag is not None:
            body.append((371, str(tag)))
        if ref_type:
            body.append((372, ref_type))
        body += [(373, str(int(reason))), (58, text)]
        self._send("3", body, now)
        self.stats.rejects_sent += 1

    def _on_message(self, msg: Message, now: float, events: list[Event]) -> None:
        if msg.get(8) != BEGIN_STRING:
            events.append(self._hard_logout(f"BeginString must be {BEGIN_STRING}", now))
            return
        msg_type = msg.msg_type
        seq_text = msg.get(34)
        seq = int(seq_text) if seq_text is not None and seq_text.isdigit() else None
        if self.state is State.AWAITING_LOGON:
            self._on_logon(msg, seq, now, events)
            return
        if seq is None:
            events.append(self._hard_logout("MsgSeqNum (34) missing or not a number", now))
            return
        config = self.config
        assert config is not None
        if msg.get(49) != config.target_comp_id or msg.get(56) != config.sender_comp_id:
            self._reject(seq, msg_type, RejectReason.COMPID_PROBLEM, "CompID problem", 49, now)
            events.append(self._hard_logout("CompID problem", now))
            return
        if msg_type == "4" and msg.get(123) != "Y":
            self._on_sequence_reset(msg, seq, now)
            return
        if msg_type == "5" and seq != self.next_in:
            # A Logout is honoured whatever its number (it ends the session anyway).
            self._on_logout(now, events)
            return
        if not self._check_seq(msg, seq, now, events):
            return
        try:
            self._dispatch(msg, msg_type, seq, now, events)
        except _Rejected as exc:
            self._reject(seq, msg_type, exc.reason, exc.text, exc.tag, now)

    def _check_seq(self, msg: Message, seq: int, now: float, events: list[Event]) -> bool:
        """True when ``msg`` is the next in sequence (and is consumed); handles the rest."""
        self._highest_seen = max(self._highest_seen, seq)
        if seq == self.next_in:
            self._advance_to(seq + 1)
            return True
        if seq < self.next_in:
            if msg.get(43) == "Y":
                return False  # a duplicate we already have: ignored, as FIX says
            events.append(
                self._hard_logout(
                    f"MsgSeqNum too low, expecting {self.next_in} but received {seq}", now
                )
            )
            return False
        # Too high: messages were lost. Answer a ResendRequest first (FIX says so), then ask.
        if msg.msg_type == "2":
            try:
                self._on_resend_request(msg, now, events)
            except _Rejected as exc:
                self._reject(seq, "2", exc.reason, exc.text, exc.tag, now)
        if not self._resend_pending:
            self._resend_pending = True
            self._send("2", [(7, str(self.next_in)), (16, "0")], now)
            self.stats.resend_requests_sent += 1
        return False

    def _on_logon(self, msg: Message, seq: int | None, now: float, events: list[Event]) -> None:
        if msg.msg_type != "A":
            events.append(self._close("first message was not a Logon"))
            return
        peer = (msg.get(49) or "", msg.get(56) or "")
        config = self._accepted.get(peer)
        if config is None:
            events.append(self._close(f"unknown SenderCompID/TargetCompID pair {peer}"))
            return
        self.config = config
        if seq is None or seq < 1:
            events.append(self._hard_logout("MsgSeqNum (34) missing or not a number", now))
            return
        if config.password is not None:
            # Wire bytes come back as Latin-1 text: re-encoding gives the bytes sent.
            given = (msg.get(554) or "").encode("latin-1")
            if not hmac.compare_digest(given, config.password.encode()):
                events.append(self._hard_logout("bad password (554)", now))
                return
        if msg.get(98) not in ("0", None):
            events.append(self._hard_logout("EncryptMethod (98) must be 0", now))
            return
        hb_text = msg.get(108)
        limits = self._limits
        if hb_text is None or not hb_text.isdigit():
            events.append(self._hard_logout("HeartBtInt (108) missing or not a number", now))
            return
        hb = int(hb_text)
        if not limits.min_heartbeat <= hb <= limits.max_heartbeat:
            events.append(
                self._hard_logout(
                    f"HeartBtInt must be {limits.min_heartbeat}-{limits.max_heartbeat}", now
                )
            )
            return
        reset = msg.get(141) == "Y"
        if reset and seq != 1:
            events.append(self._hard_logout("ResetSeqNumFlag=Y needs MsgSeqNum 1", now))
            return
        self.heartbeat = hb
        self.state = State.ACTIVE
        body: list[Field] = [(98, "0"), (108, str(hb))]
        if reset:
            body.append((141, "Y"))
        self._send("A", body, now)
        events.append(LoggedOn(config.sender_comp_id, config.target_comp_id, hb))
        self._check_seq(msg, seq, now, events)

    def _dispatch(
        self, msg: Message, msg_type: str | None, seq: int, now: float, events: list[Event]
    ) -> None:
        if msg_type is None:
            raise _Rejected(RejectReason.REQUIRED_TAG_MISSING, "MsgType (35) missing", 35)
        if msg.get(52) is None:
            raise _Rejected(RejectReason.REQUIRED_TAG_MISSING, "SendingTime (52) missing", 52)
        if msg_type == "0":
            test_id = msg.get(112)
            if self._test_request is not None and test_id == self._test_request[0]:
                self._test_request = None
        elif msg_type == "1":
            test_id = msg.get(112)
            if not test_id:
                raise _Rejected(RejectReason.REQUIRED_TAG_MISSING, "TestReqID (112) missing", 112)
            self._send("0", [(112, test_id)], now)
        elif msg_type == "2":
            self._on_resend_request(msg, now, events)
        elif msg_type == "3":
            pass  # the peer rejected one of ours: nothing to redo for market data
        elif msg_type == "4":
            new_seq = _int_tag(msg, 36, "NewSeqNo")
            if new_seq < self.next_in:
                raise _Rejected(
                    RejectReason.VALUE_INCORRECT,
                    f"NewSeqNo {new_seq} is below the expected {self.next_in}",
                    36,
                )
            self._advance_to(new_seq)
        elif msg_type == "5":
            self._on_logout(now, events)
        elif msg_type == "A":
            events.append(self._hard_logout("Logon received on an active session", now))
        else:
            events.append(AppMessage(msg, seq))
        if self._test_request is not None and self.state is State.ACTIVE:
            # Any message from the peer proves it is alive; only a Heartbeat clears the
            # request formally, but FIX counts any traffic as an answer.
            self._test_request = None

    def _on_resend_request(self, msg: Message, now: float, events: list[Event]) -> None:
        begin = _int_tag(msg, 7, "BeginSeqNo")
        end = _int_tag(msg, 16, "EndSeqNo")
        if begin < 1 or (end != 0 and end < begin):
            raise _Rejected(RejectReason.VALUE_INCORRECT, "bad BeginSeqNo/EndSeqNo range", 7)
        if begin >= self.next_out:
            return  # nothing we sent is missing
        self._send("4", [(123, "Y"), (36, str(self.next_out))], now, seq=begin)
        self.stats.gap_fills_sent += 1
        events.append(ResendAnswered(begin, end))

    def _on_sequence_reset(self, msg: Message, seq: int, now: float) -> None:
        """SequenceReset-Reset (no GapFillFlag): MsgSeqNum is ignored, NewSeqNo sets it."""
        text = msg.get(36)
        if text is None or not text.isdigit():
            self._reject(seq, "4", RejectReason.REQUIRED_TAG_MISSING, "NewSeqNo (36)", 36, now)
            return
        new_seq = int(text)
        if new_seq < self.next_in:
            self._reject(
                seq,
                "4",
                RejectReason.VALUE_INCORRECT,
                f"NewSeqNo {new_seq} is below the expected {self.next_in}",
                36,
                now,
            )
            return
        self._highest_seen = max(self._highest_seen, new_seq - 1)
        self._advance_to(new_seq)

    def _advance_to(self, next_in: int) -> None:
        """Expect ``next_in`` next; a pending resend is over once it covers all we saw."""
        self.next_in = next_in
        if self._resend_pending and next_in > self._highest_seen:
            self._resend_pending = False

    def _on_logout(self, now: float, events: list[Event]) -> None:
        if self.state is State.LOGOUT_SENT:
            events.append(self._close("Logout answered"))
            return
        self._send("5", [], now)
        events.append(self._close("peer logged out"))


def _int_tag(msg: Message, tag: int, name: str) -> int:
    text = msg.get(tag)
    if text is None:
        raise _Rejected(RejectReason.REQUIRED_TAG_MISSING, f"{name} ({tag}) missing", tag)
    if not (text.isascii() and text.isdigit()):
        raise _Rejected(RejectReason.INCORRECT_DATA_FORMAT, f"{name} ({tag}) not a number", tag)
    return int(text)
