"""Sans-I/O gRPC over HTTP/2, server side: request checks, message framing, status trailers.

Everything a request carries is untrusted, and every way it can be wrong has an
answer on its own stream (PROTOCOL-HTTP2.md of grpc/grpc): a wrong method or
content type gets the HTTP status gRPC clients map (405, 415), everything else a
``grpc-status`` in a trailers-only response. Nothing here raises past its caller:
``check_request`` returns a ``Rejection``, ``MessageReader`` raises ``WireError``
with the status to send.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Final

import attrs

from dragonflybot.service.purerpc_adapter import StatusCode

Headers = Sequence[tuple[bytes, bytes]]

PREFIX_LENGTH: Final = 5
"""Compressed flag (1 byte) and big-endian length (4 bytes) before each message."""

_TIMEOUT: Final = re.compile(rb"^([0-9]{1,8})([HMSmun])$")
_TIMEOUT_UNITS: Final = {
    b"H": 3600.0,
    b"M": 60.0,
    b"S": 1.0,
    b"m": 1e-3,
    b"u": 1e-6,
    b"n": 1e-9,
}
_PATH: Final = re.compile(rb"^/([A-Za-z0-9_.]{1,200})/([A-Za-z0-9_]{1,200})$")
_BIN_SUFFIX: Final = b"-bin"
_IDENTITY: Final = (b"", b"identity")


def frame_message(payload: bytes) -> bytes:
    """One uncompressed gRPC message: the 5-byte prefix, then ``payload``.

    A ``Summary`` is framed once per published state and the same bytes go to every
    stream (``summary.EncodedBook.framed``).
    """
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class Framed:
    """A message already framed (prefix included): sent as is, to any number of streams."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


@attrs.frozen(slots=True)
class Rejection:
    """Why a request is refused: the HTTP status and the gRPC status to answer with."""

    code: StatusCode
    message: str
    http_status: int = 200


@attrs.frozen(slots=True)
class Request:
    """A request that passed every check."""

    service: str
    method: str
    timeout: float | None
    """Seconds from ``grpc-timeout``, ``None`` without one."""
    headers: tuple[tuple[bytes, bytes], ...]


def check_request(headers: Headers) -> Request | Rejection:
    """Validate a request's headers as a gRPC server must (h2 already checked HTTP/2 rules)."""
    method = path = content_type = te = None
    timeout: float | None = None
    for name, value in headers:
        if name == b":method":
            method = value
        elif name == b":path":
            path = value
        elif name == b"content-type":
            content_type = value
        elif name == b"te":
            te = value
        elif name == b"grpc-timeout":
            try:
                timeout = parse_timeout(value)
            except ValueError:
                return Rejection(StatusCode.INVALID_ARGUMENT, "malformed grpc-timeout")
        elif name == b"grpc-encoding":
            if value not in _IDENTITY:
                return Rejection(StatusCode.UNIMPLEMENTED, "only identity encoding is accepted")
        elif name.endswith(_BIN_SUFFIX) and not valid_binary_header(value):
            return Rejection(StatusCode.INVALID_ARGUMENT, "malformed -bin header")
    if method != b"POST":
        return Rejection(StatusCode.UNIMPLEMENTED, "gRPC requests are POST", http_status=405)
    if content_type is None or not _is_grpc_content_type(content_type):
        return Rejection(
            StatusCode.INVALID_ARGUMENT, "content-type must be application/grpc", http_status=415
        )
    if te != b"trailers":
        return Rejection(StatusCode.INVALID_ARGUMENT, "te: trailers is required")
    match = _PATH.match(path or b"")
    if match is None:
        return Rejection(StatusCode.UNIMPLEMENTED, "malformed method path")
    return Request(
        match.group(1).decode("ascii"),
        match.group(2).decode("ascii"),
        timeout,
        tuple(headers),
    )


def _is_grpc_content_type(value: bytes) -> bool:
    """``application/grpc``, optionally ``+proto`` or with parameters (the spec's forms)."""
    return value == b"application/grpc" or value.startswith(
        (b"application/grpc+proto", b"application/grpc;")
    )


def parse_timeout(value: bytes) -> float:
    """``grpc-timeout`` (``TimeoutValue TimeoutUnit``, at most 8 digits) in seconds."""
    match = _TIMEOUT.match(value)
    if match is None:
        raise ValueError(f"malformed grpc-timeout {value!r}")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def valid_binary_header(value: bytes) -> bool:
    """A ``-bin`` value: base64, padded or not (gRPC accepts both)."""
    padded = value + b"=" * (-len(value) % 4)
    try:
        base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def response_headers() -> list[tuple[bytes, bytes]]:
    return [(b":status", b"200"), (b"content-type", b"application/grpc")]


def status_trailers(code: StatusCode, message: str = "") -> list[tuple[bytes, bytes]]:
    """``grpc-status`` and (percent-encoded, as the spec says) ``grpc-message``."""
    trailers = [(b"grpc-status", str(code.value).encode("ascii"))]
    if message:
        encoded = urllib.parse.quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
        trailers.append((b"grpc-message", encoded.encode("ascii")))
    return trailers


def trailers_only(
    code: StatusCode, message: str, http_status: int = 200
) -> list[tuple[bytes, bytes]]:
    """A whole response in one HEADERS frame (a call that fails before any message)."""
    return [
        (b":status", str(http_status).encode("ascii")),
        (b"content-type", b"application/grpc"),
        *status_trailers(code, message),
    ]


class WireError(Exception):
    """A request body that cannot be accepted; carries the status to answer with."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MessageReader:
    """Splits a stream's request body into messages, refusing any over ``max_size``.

    The declared length is checked as soon as the prefix arrives, so an oversized
    message is refused before its bytes are buffered (RESOURCE_EXHAUSTED).
    """

    __slots__ = ("_buffer", "_length", "_max_size")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        self._length: int | None = None
        """The declared length of the message being received, once its prefix is in."""

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def partial(self) -> bool:
        """A message was begun but not completed."""
        return bool(self._buffer) or self._length is not None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The messages completed by ``data``; ``WireError`` for a bad prefix or size."""
        buffer = self._buffer
        buffer += data
        while True:
            if self._length is None:
                if len(buffer) < PREFIX_LENGTH:
                    return
                flag = buffer[0]
                length = int.from_bytes(buffer[1:PREFIX_LENGTH], "big")
                if flag == 1:
                    raise WireError(StatusCode.INTERNAL, "compressed message without grpc-encoding")
                if flag != 0:
                    raise WireError(StatusCode.INTERNAL, "invalid message prefix")
                if length > self._max_size:
                    raise WireError(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"message of {length} bytes is over the limit of {self._max_size}",
                    )
                del buffer[:PREFIX_LENGTH]
                self._length = length
            if len(buffer) < self._length:
                return
            message = bytes(buffer[: self._length])
            del buffer[: self._length]
            self._length = None
            yield message
