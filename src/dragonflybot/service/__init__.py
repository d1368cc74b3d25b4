"""Layer 5: the gRPC service — ``BookSummary`` streams and the health service.

Server side: ``SummaryPublisher`` (the aggregator's publisher: encode once, fan
out), ``BookSummaryService``, ``BookServiceV1`` (dragonflybot.v1, every instrument
given as an ``InstrumentSource``), ``HealthService`` and ``reflection_servicers``
(the servicers), ``GrpcServer`` (bind exactly one address; HTTP/2 on h2 with every
per-client limit, see ``connection`` and docs/security.md; paced streams, graceful
shutdown). Client side:
``open_channel`` (purerpc with a small window) and ``follow_book`` (the stream
into a latest-value fan-out, with optional reconnects).
"""

from dragonflybot.service.book_client import ReceivedSummary, follow_book
from dragonflybot.service.book_summary import SERVICE_NAME, BookSummaryService, StreamStats
from dragonflybot.service.book_v1 import BookServiceV1, InstrumentSource
from dragonflybot.service.channel import open_channel
from dragonflybot.service.health import HealthService
from dragonflybot.service.reflection import reflection_servicers
from dragonflybot.service.server import GrpcServer
from dragonflybot.service.summary import (
    EncodedBook,
    SummaryEncoder,
    SummaryPublisher,
    encode_summary,
    to_summary,
)

__all__ = [
    "SERVICE_NAME",
    "BookServiceV1",
    "BookSummaryService",
    "EncodedBook",
    "GrpcServer",
    "HealthService",
    "InstrumentSource",
    "ReceivedSummary",
    "StreamStats",
    "SummaryEncoder",
    "SummaryPublisher",
    "encode_summary",
    "follow_book",
    "open_channel",
    "reflection_servicers",
    "to_summary",
]
