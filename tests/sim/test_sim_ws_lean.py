"""The lean server's hand-framed text frames are the bytes wsproto frames."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from dragonflybot.sim.ws_lean import text_frame


def open_pair() -> tuple[WSConnection, WSConnection]:
    """A server and a client wsproto connection past the handshake (no extension)."""
    server = WSConnection(ConnectionType.SERVER)
    client = WSConnection(ConnectionType.CLIENT)
    server.receive_data(client.send(Request(host="venue", target="/ws")))
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    return server, client


def test_every_length_boundary_frames_as_wsproto_does() -> None:
    server, client = open_pair()
    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        text = "x" * size
        assert text_frame(text) == server.send(TextMessage(data=text))
        client.receive_data(text_frame(text))
        (event,) = client.events()
        assert isinstance(event, TextMessage) and event.data == text
        assert event.message_finished


@given(st.text(max_size=300))
def test_any_text_round_trips_through_a_wsproto_client(text: str) -> None:
    server, client = open_pair()
    assert text_frame(text) == server.send(TextMessage(data=text))
    client.receive_data(text_frame(text) + text_frame(text[::-1]))
    events = list(client.events())
    assert [e.data for e in events if isinstance(e, TextMessage)] == [text, text[::-1]]
