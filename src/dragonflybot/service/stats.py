"""What one gRPC server refused, cut and timed out (plain counters: the metrics read them).

Every limit in ``LimitsConfig`` has a counter here, so an operator sees an attack
(or a limit set too low for honest clients) in ``/metrics`` rather than in logs,
which are kept quiet on purpose: one line per refused connection would let a
flood fill the disk.
"""

from __future__ import annotations

import math

import attrs


@attrs.define
class ServerStats:
    connections_accepted: int = 0
    connections_refused: int = 0
    """Closed at once because ``max_connections`` were open."""
    connections_timed_out: int = 0
    """No handshake within ``handshake_timeout``, or no stream for ``idle_timeout``."""
    accept_errors: int = 0
    """``accept`` failures (EMFILE, ENFILE, ...) survived by waiting and retrying."""
    protocol_errors: int = 0
    """Connections h2 ended with GOAWAY for breaking HTTP/2."""
    streams_refused: int = 0
    """Streams over ``max_streams_per_connection`` (or opened during shutdown): REFUSED_STREAM."""
    streams_reset: int = 0
    """Streams the client reset (RST_STREAM); each one's state is freed at once."""
    requests_rejected: int = 0
    """Requests answered with an error status for being malformed (headers or body)."""
    messages_too_large: int = 0
    """Request messages over ``max_receive_message``: RESOURCE_EXHAUSTED."""
    floods_control: int = 0
    """Connections cut for too many control frames (PING, SETTINGS, WINDOW_UPDATE, ...)."""
    floods_reset: int = 0
    """Connections cut for resetting or having refused too many streams (rapid reset)."""
    floods_header_block: int = 0
    """Connections cut for a header block over ``max_header_list``."""
    floods_unread: int = 0
    """Connections cut for asking for more than they read (queued replies over a bound)."""
    tls_failures: int = 0
    """TLS handshakes that failed (no or an untrusted client certificate, not TLS at all)."""
    unauthenticated: int = 0
    """Calls refused with UNAUTHENTICATED: no bearer token, or a wrong one."""
    keepalive_timeouts: int = 0
    """Connections closed for not answering a keepalive PING in ``keepalive_timeout``."""
    internal_errors: int = 0
    """Connections ended by an unexpected error in the server (a bug; logged with traceback)."""


class LogThrottle:
    """At most one log line per ``interval`` seconds for events a client can cause at will.

    A flood of bad connections must not become a flood of log lines; the counters
    above have every event, the log has a sample to say that it is happening.
    """

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last = -math.inf

    def allow(self, now: float) -> bool:
        if now - self._last < self.interval:
            return False
        self._last = now
        return True
