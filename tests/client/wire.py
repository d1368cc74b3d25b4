"""Server frames built byte by byte (RFC 6455 §5.2), and wsproto as the reference reader.

wsproto's own sender only writes well-formed frames with the shortest length encoding; the fast
path must also be shown frames no good server sends (reserved bits, masks, padded lengths).
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import cast

from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes | str,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_size: int | None = None,
) -> bytes:
    """One frame; ``length_size`` (1, 2 or 8 bytes) forces a length encoding, even a padded one."""
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = length_size or (1 if len(data) < 126 else 2 if len(data) < 0x10000 else 8)
    mask_bit = 0x80 if mask is not None else 0
    if size == 1:
        head += bytes([mask_bit | len(data)])
    elif size == 2:
        head += bytes([mask_bit | 126]) + struct.pack("!H", len(data))
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", len(data))
    if mask is not None:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        head += mask
    return head + data


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason.encode())


def open_client() -> WSConnection:
    """A client-side wsproto connection already past the handshake."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="venue.test", target="/ws")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    return client


@dataclass
class Seen:
    """What a reader made of the server's bytes: messages, pings answered, the close."""

    messages: list[str | bytes] = field(default_factory=list)
    pings: list[bytes] = field(default_factory=list)
    close: tuple[int, str] | None = None


def join(parts: list[str | bytes]) -> str | bytes:
    if parts and isinstance(parts[0], str):
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))


def reference(chunks: list[bytes], *, eof: bool) -> Seen:
    """Plain wsproto alone on the same bytes, messages assembled the way the client does."""
    ws = open_client()
    seen = Seen()
    parts: list[str | bytes] = []
    for chunk in [*chunks, None] if eof else chunks:
        ws.receive_data(chunk)
        for event in ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
                if event.message_finished:
                    seen.messages.append(join(parts))
                    parts.clear()
            elif isinstance(event, Ping) and ws.state is ConnectionState.OPEN:
                seen.pings.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                seen.close = (int(event.code), event.reason or "")
                return seen
    return seen


# -- Hypothesis: what a server may send -------------------------------------------------------

# Sizes around each length encoding: 7-bit (0-125), 16-bit (126-65535), 64-bit (>= 65536).
sizes = st.one_of(
    st.integers(0, 125),
    st.integers(126, 400),
    st.just(65535),
    st.integers(65536, 66000),
)
TEXT_ALPHABET = 'aZ0 {}"é✓€𝄞'


@st.composite
def payload_texts(draw: st.DrawFn) -> str:
    """Text, non-ASCII included; the long ones are cheap repeats sized in characters."""
    if draw(st.booleans()):
        return draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
    unit = draw(st.text(alphabet=TEXT_ALPHABET, min_size=1, max_size=4))
    size = draw(sizes)
    return (unit * (size // len(unit) + 1))[:size]


@st.composite
def payload_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=60))
    unit = draw(st.binary(min_size=1, max_size=4))
    size = draw(sizes)
    return (unit * (size // len(unit) + 1))[:size]


control_payloads = st.binary(max_size=125)


@dataclass(frozen=True)
class Piece:
    """Frames of one generated item; ``simple`` when it is one frame the fast path decodes."""

    wire: bytes
    simple: bool


@st.composite
def server_items(draw: st.DrawFn) -> Piece:
    kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "fragmented"]))
    if kind == "text":
        return Piece(frame(TEXT, draw(payload_texts())), simple=True)
    if kind == "binary":
        return Piece(frame(BINARY, draw(payload_bytes())), simple=True)
    if kind in ("ping", "pong"):
        return Piece(frame(PING if kind == "ping" else PONG, draw(control_payloads)), False)
    message: str | bytes = draw(st.one_of(payload_texts(), payload_bytes()))
    opcode = TEXT if isinstance(message, str) else BINARY
    data = message.encode() if isinstance(message, str) else message
    # Cut on bytes, even inside a UTF-8 sequence: wsproto decodes across frames.
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), min_size=1, max_size=4))))
    bounds = [0, *cuts, len(data)]
    wire = b""
    for index in range(len(bounds) - 1):
        last = index == len(bounds) - 2
        wire += frame(
            opcode if index == 0 else CONTINUATION,
            data[bounds[index] : bounds[index + 1]],
            fin=last,
        )
        if not last and draw(st.booleans()):
            wire += frame(PING if draw(st.booleans()) else PONG, draw(control_payloads))
    return Piece(wire, simple=False)


def cut(wire: bytes, cuts: list[int]) -> list[bytes]:
    """``wire`` in pieces at ``cuts`` (taken modulo its length)."""
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    return [wire[a:b] for a, b in itertools.pairwise(bounds)]
