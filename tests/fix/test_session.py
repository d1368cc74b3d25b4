"""The FIX session state machine, without sockets: logon, sequence rules, heartbeats."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.fix.codec import Message, encode
from dragonflybot.fix.session import (
    AppMessage,
    Disconnect,
    FixSession,
    LoggedOn,
    ResendAnswered,
    SessionConfig,
    SessionLimits,
    State,
)

from .peer import CLIENT, SERVER, SESSIONS, Peer


def active(heartbeat: int = 30) -> Peer:
    peer = Peer(FixSession(SESSIONS, 0.0))
    replies = peer.logon(heartbeat)
    assert [m.msg_type for m in replies] == ["A"]
    return peer


def types(messages: list[Message]) -> list[str | None]:
    return [m.msg_type for m in messages]


def test_logon_is_answered_with_our_logon_and_heartbeat() -> None:
    peer = Peer(FixSession(SESSIONS, 0.0))
    events = peer.send("A", [(98, "0"), (108, "15"), (554, "secret")])
    assert events == [LoggedOn(SERVER, CLIENT, 15)]
    (reply,) = peer.replies()
    assert reply.get(49) == SERVER and reply.get(56) == CLIENT
    assert reply.get(34) == "1" and reply.get(108) == "15"
    assert peer.session.state is State.ACTIVE and peer.session.next_in == 2


def test_reset_seq_num_flag_is_echoed() -> None:
    peer = Peer(FixSession(SESSIONS, 0.0))
    peer.send("A", [(98, "0"), (108, "30"), (554, "secret"), (141, "Y")])
    (reply,) = peer.replies()
    assert reply.get(141) == "Y"


def test_bad_password_unknown_pair_and_non_logon_end_the_connection() -> None:
    peer = Peer(FixSession(SESSIONS, 0.0))
    events = peer.send("A", [(98, "0"), (108, "30"), (554, "wrong")])
    assert events == [Disconnect("bad password (554)")]
    (logout,) = peer.replies()
    assert logout.msg_type == "5" and logout.get(58) == "bad password (554)"

    stranger = FixSession({}, 0.0)
    events = stranger.receive_data(Peer(stranger).build("A", [(108, "30")]), 0.0)
    assert isinstance(events[0], Disconnect) and stranger.data_to_send() == b""

    session = FixSession(SESSIONS, 0.0)
    events = session.receive_data(Peer(session).build("V", [(262, "x")]), 0.0)
    assert events == [Disconnect("first message was not a Logon")]


def test_heartbeat_interval_out_of_bounds_is_refused() -> None:
    peer = Peer(FixSession(SESSIONS, 0.0, limits=SessionLimits(max_heartbeat=60)))
    events = peer.send("A", [(98, "0"), (108, "61"), (554, "secret")])
    assert isinstance(events[0], Disconnect) and "HeartBtInt" in events[0].reason


def test_no_logon_in_time_disconnects() -> None:
    session = FixSession(SESSIONS, 0.0, limits=SessionLimits(logon_timeout=5))
    assert session.next_deadline() == 5
    assert session.tick(4.9) == []
    assert session.tick(5.0) == [Disconnect("no Logon received in time")]


def test_application_messages_come_out_as_events_in_sequence() -> None:
    peer = active()
    events = peer.send("V", [(262, "r1")])
    assert len(events) == 1 and isinstance(events[0], AppMessage)
    assert events[0].seq == 2 and events[0].message.get(262) == "r1"


def test_sequence_too_high_asks_for_a_resend_once_then_catches_up() -> None:
    peer = active()
    peer.seq = 5  # messages 2-4 were lost
    assert peer.send("V", [(262, "r5")]) == []
    assert peer.send("V", [(262, "r6")]) == []
    (resend,) = peer.replies()
    assert resend.msg_type == "2" and resend.get(7) == "2" and resend.get(16) == "0"
    # The peer gap-fills its admin messages and resends the rest.
    gap = peer.send("4", [(123, "Y"), (36, "4")], seq=2, extra_header=[(43, "Y")])
    assert gap == []
    assert peer.session.next_in == 4
    events = peer.send("V", [(262, "r4")], seq=4, extra_header=[(43, "Y")])
    assert [e.message.get(262) for e in events if isinstance(e, AppMessage)] == ["r4"]
    assert peer.session.stats.resend_requests_sent == 1


def test_sequence_too_low_logs_out_with_the_reason_unless_possdup() -> None:
    peer = active()
    peer.send("V", [(262, "a")])
    assert peer.send("V", [(262, "dup")], seq=2, extra_header=[(43, "Y")]) == []
    events = peer.send("V", [(262, "b")], seq=2)
    assert events == [Disconnect("MsgSeqNum too low, expecting 3 but received 2")]
    (logout,) = peer.replies()
    assert logout.msg_type == "5" and "too low" in (logout.get(58) or "")


def test_resend_request_is_answered_with_a_gap_fill() -> None:
    peer = active()
    for _ in range(3):
        peer.session.send("W", [(262, "x")], 0.0)
    peer.replies()
    events = peer.send("2", [(7, "2"), (16, "0")])
    assert events == [ResendAnswered(2, 0)]
    (fill,) = peer.replies()
    assert fill.msg_type == "4" and fill.get(34) == "2" and fill.get(123) == "Y"
    assert fill.get(36) == "5" and fill.get(43) == "Y" and fill.get(122) is not None
    assert peer.session.next_out == 5  # the gap fill reuses the old number


def test_sequence_reset_reset_mode_moves_the_expected_number() -> None:
    peer = active()
    peer.send("4", [(36, "10")], seq=99)
    assert peer.session.next_in == 10
    peer.send("4", [(36, "3")], seq=10)
    (reject,) = peer.replies()
    assert reject.msg_type == "3" and reject.get(371) == "36" and reject.get(373) == "5"


def test_malformed_admin_message_is_rejected_with_tag_and_reason() -> None:
    peer = active()
    peer.send("1", [])
    (reject,) = peer.replies()
    assert reject.msg_type == "3"
    assert reject.get(45) == "2" and reject.get(371) == "112" and reject.get(373) == "1"
    assert reject.get(372) == "1"
    # The rejected message still used its number.
    assert peer.session.next_in == 3


def test_test_request_is_answered_with_its_id() -> None:
    peer = active()
    peer.send("1", [(112, "ping")])
    (hb,) = peer.replies()
    assert hb.msg_type == "0" and hb.get(112) == "ping"


def test_heartbeats_test_requests_and_the_timeout() -> None:
    peer = active(heartbeat=10)
    session = peer.session
    assert session.next_deadline() == 10
    session.tick(10)
    assert types(peer.replies()) == ["0"]
    # 12 s without a word from the peer: a TestRequest.
    session.tick(12)
    (test,) = peer.replies()
    assert test.msg_type == "1" and test.get(112)
    # Answered: the session stays up.
    peer.now = 13
    peer.send("0", [(112, test.get(112) or "")])
    assert session.tick(20) == []
    # Not answered this time: Logout after another interval.
    session.tick(25.2)
    assert "1" in types(peer.replies())
    events = session.tick(35.3)
    assert events == [] and session.state is State.LOGOUT_SENT
    assert types(peer.replies())[-1] == "5"
    assert session.tick(40.4) == [Disconnect("Logout not answered in time")]


def test_logout_from_the_peer_is_answered() -> None:
    peer = active()
    assert peer.send("5", [(58, "bye")]) == [Disconnect("peer logged out")]
    assert types(peer.replies()) == ["5"]
    assert peer.session.receive_data(peer.build("0"), 0.0) == []


def test_our_logout_closes_when_answered() -> None:
    peer = active()
    assert peer.session.logout("shutting down", 0.0) is None
    assert types(peer.replies()) == ["5"]
    assert peer.send("5") == [Disconnect("Logout answered")]


def test_bad_checksum_and_body_length_are_dropped_and_counted() -> None:
    peer = active()
    good = peer.build("0")
    bad_sum = good[:-4] + (b"000" if not good.endswith(b"=000\x01") else b"001") + b"\x01"
    length = re.search(rb"\x019=(\d+)\x01", good)
    assert length is not None
    short = b"\x019=%d\x01" % (int(length[1]) - 1)
    bad_len = good.replace(length[0], short, 1)
    assert peer.session.receive_data(bad_sum + bad_len, 0.0) == []
    assert peer.session.stats.garbled == 2
    assert peer.replies() == []
    # The next message is a gap: the session asks for a resend of what was dropped.
    peer.send("0")
    (resend,) = peer.replies()
    assert resend.msg_type == "2" and resend.get(7) == "2"


def test_wrong_comp_id_is_rejected_and_logged_out() -> None:
    peer = active()
    msg = encode([(35, "0"), (49, "OTHER"), (56, SERVER), (34, "2"), (52, "x")], [])
    events = peer.session.receive_data(msg, 0.0)
    assert events == [Disconnect("CompID problem")]
    assert types(peer.replies()) == ["3", "5"]


@settings(max_examples=150)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_garbage_bytes_never_raise(chunks: list[bytes]) -> None:
    peer = active()
    for chunk in chunks:
        peer.session.receive_data(chunk, 1.0)
    peer.session.tick(2.0)


fields = st.lists(
    st.tuples(
        st.sampled_from([7, 16, 34, 35, 36, 43, 49, 52, 56, 108, 112, 123, 262, 99999]),
        st.text(alphabet="0123456789AYN-=xz", min_size=1, max_size=6),
    ),
    max_size=8,
)


@settings(max_examples=120)
@given(st.lists(st.tuples(st.sampled_from(["0", "1", "2", "4", "5", "A", "V", "Z"]), fields)))
def test_well_framed_hostile_messages_never_raise(messages: list[tuple[str, list]]) -> None:
    peer = active()
    for msg_type, body in messages:
        data = encode([(35, msg_type)], body)
        peer.session.receive_data(data, 1.0)
        peer.replies()


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=-2, max_value=3), max_size=20))
def test_sequence_numbers_follow_the_rules(steps: list[int]) -> None:
    """Each step sends a message offset from the expected number: consumed iff equal."""
    peer = active()
    session = peer.session
    for offset in steps:
        if session.state is not State.ACTIVE:
            break
        expected = session.next_in
        seq = max(1, expected + offset)
        events = peer.send("V", [(262, "x")], seq=seq)
        replies = types(peer.replies())
        if seq == expected:
            assert session.next_in == expected + 1
            assert any(isinstance(e, AppMessage) for e in events)
        elif seq > expected:
            assert session.next_in == expected and not events
        else:
            assert events == [
                Disconnect(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            ]
            assert replies == ["5"]
    # Every message we sent carried the next outbound number, without a gap.
    assert session.next_out >= 2


def test_session_config_password_is_optional() -> None:
    open_sessions = {(CLIENT, SERVER): SessionConfig(SERVER, CLIENT)}
    peer = Peer(FixSession(open_sessions, 0.0))
    assert types(peer.logon(password="anything")) == ["A"]


def test_a_gap_fill_beyond_every_number_seen_ends_the_resend() -> None:
    """After the fill, a new gap must trigger a new ResendRequest."""
    peer = active()
    peer.seq = 6
    peer.send("V", [(262, "lost")])  # 2-5 missing: ResendRequest(2)
    peer.send("4", [(123, "Y"), (36, "7")], seq=2, extra_header=[(43, "Y")])
    assert peer.session.next_in == 7
    peer.seq = 9
    peer.send("V", [(262, "again")])  # 7-8 missing: a second ResendRequest(7)
    resends = [m for m in peer.replies() if m.msg_type == "2"]
    assert [m.get(7) for m in resends] == ["2", "7"]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("app"), st.integers(min_value=0, max_value=0)),
        st.tuples(st.just("tick"), st.integers(min_value=0, max_value=40)),
        st.tuples(st.just("peer"), st.integers(min_value=-1, max_value=2)),
        st.tuples(st.just("resend"), st.integers(min_value=1, max_value=6)),
        st.tuples(st.just("test"), st.integers(min_value=0, max_value=0)),
    ),
    max_size=30,
)


@settings(max_examples=150)
@given(operations)
def test_outbound_numbers_are_consecutive_and_gap_fills_point_forward(ops: list) -> None:
    """Whatever happens, our own messages are numbered 1, 2, 3, ... with no gap or repeat;
    a gap fill reuses an old number (PossDupFlag=Y) and moves the peer to our next one."""
    peer = Peer(FixSession(SESSIONS, 0.0))
    peer.logon(heartbeat=10)
    numbers = [1]
    now = 0.0
    for op, arg in ops:
        session = peer.session
        if session.closed:
            break
        if op == "app":
            session.send("W", [(262, "x")], now)
        elif op == "tick":
            now += arg
            peer.now = now
            session.tick(now)
        elif op == "peer":
            peer.send("0", seq=max(1, session.next_in + arg))
        elif op == "resend":
            peer.send("2", [(7, str(arg)), (16, "0")])
        else:
            peer.send("1", [(112, "t")])
        for msg in peer.replies():
            seq = int(msg.get(34) or 0)
            if msg.get(43) == "Y":
                assert msg.msg_type == "4" and msg.get(123) == "Y"
                assert seq < int(msg.get(36) or 0) == session.next_out
            else:
                assert seq == numbers[-1] + 1, (numbers, msg)
                numbers.append(seq)
    assert peer.session.next_out == numbers[-1] + 1
