"""The lean backend's reassembly against every way TCP may cut and the peer may fragment.

In-memory streams instead of sockets so Hypothesis can choose the exact cut points.
"""

from __future__ import annotations

import itertools

import trio
import trio.lowlevel
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonflybot.client.wsproto_backend import WsprotoStream
from dragonflybot.client.wsurl import parse_ws_url
from dragonflybot.errors import TransportError

from .ws_peer import RawPeer

URL = "ws://venue.test/ws/ethbtc@depth"

messages = st.lists(st.one_of(st.text(max_size=200), st.binary(max_size=200)), max_size=25)


def frames(peer: RawPeer, message: str | bytes, cuts: list[int]) -> bytes:
    """``message`` as one frame per piece between ``cuts``, with a ping after the first piece."""
    bounds = [0, *sorted({cut % (len(message) + 1) for cut in cuts}), len(message)]
    pieces = [message[start:end] for start, end in itertools.pairwise(bounds)]
    out = b""
    for index, piece in enumerate(pieces):
        final = index == len(pieces) - 1
        if isinstance(piece, str):
            out += peer.text(piece, final=final)
        else:
            out += peer.binary(piece, final=final)
        if index == 0 and not final:
            out += peer.ping(b"mid-message")
    return out


async def exchange(
    sent: list[str | bytes], fragment_cuts: list[list[int]], wire_cuts: list[int], limit: int
) -> tuple[list[str | bytes], str]:
    client_end, server_end = trio.testing.memory_stream_pair()
    peer = RawPeer(server_end)
    stream = WsprotoStream(client_end, URL, max_message_size=limit, disconnect_timeout=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.accept)
        await stream.handshake(parse_ws_url(URL))

    wire = b"".join(
        frames(peer, message, cuts) for message, cuts in zip(sent, fragment_cuts, strict=False)
    )
    bounds = [0, *sorted({cut % (len(wire) + 1) for cut in wire_cuts}), len(wire)]

    async def serve() -> None:
        for start, end in itertools.pairwise(bounds):
            await server_end.send_all(wire[start:end])
            await trio.lowlevel.checkpoint()
        await server_end.aclose()

    received: list[str | bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        while True:
            try:
                received.append(await stream.receive())
            except TransportError as exc:
                return received, str(exc)


@settings(max_examples=150, deadline=None)
@given(
    sent=messages,
    data=st.data(),
    wire_cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=30),
)
def test_messages_survive_any_fragmentation_and_tcp_cuts(
    sent: list[str | bytes], data: st.DataObject, wire_cuts: list[int]
) -> None:
    fragment_cuts = [
        data.draw(st.lists(st.integers(min_value=0, max_value=200), max_size=4)) for _ in sent
    ]
    received, ending = trio.run(exchange, sent, fragment_cuts, wire_cuts, 10_000)
    assert received == sent
    assert "1006" in ending


@settings(max_examples=60, deadline=None)
@given(
    sent=st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=10),
    data=st.data(),
    limit=st.integers(min_value=1, max_value=60),
)
def test_messages_up_to_the_limit_pass_and_a_longer_one_ends_the_stream(
    sent: list[str], data: st.DataObject, limit: int
) -> None:
    fragment_cuts = [
        data.draw(st.lists(st.integers(min_value=0, max_value=60), max_size=3)) for _ in sent
    ]
    sent_messages: list[str | bytes] = list(sent)
    no_cuts: list[int] = []
    received, ending = trio.run(exchange, sent_messages, fragment_cuts, no_cuts, limit)
    fitting = 0
    while fitting < len(sent) and len(sent[fitting]) <= limit:
        fitting += 1
    assert received == sent[:fitting]
    if fitting < len(sent):
        assert f"larger than {limit}" in ending
