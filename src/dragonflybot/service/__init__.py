"""Layer 5: the gRPC service (purerpc) — ``BookSummary`` streams and the health service."""

from dragonflybot.service.book_summary import SERVICE_NAME, BookSummaryService
from dragonflybot.service.health import HealthService
from dragonflybot.service.server import GrpcServer
from dragonflybot.service.summary import EncodedBook, SummaryPublisher, encode_summary, to_summary

__all__ = [
    "SERVICE_NAME",
    "BookSummaryService",
    "EncodedBook",
    "GrpcServer",
    "HealthService",
    "SummaryPublisher",
    "encode_summary",
    "to_summary",
]
