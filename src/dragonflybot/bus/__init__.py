"""The message bus between processes: feeds, aggregators and gateways over Redis (issue 12).

Layers talk through queues; this package makes one kind of queue span processes
and machines (docs/scaling.md). Sans-I/O: ``codec`` (the versioned msgpack wire
format), ``subjects`` (names, channels, keys), ``sequence`` (in order, duplicate,
gap), ``staleness`` (who fell silent) and ``pubsub_wire`` (a subscribed connection's
replies, parsed by hiredis). The trio tasks that own Redis
connections: ``publisher`` (latest-value slots -> SET + PUBLISH) and
``subscriber`` (subscribe, read the latest values, deliver in order), built on
``connection``. What roles plug in: ``outlet`` (a feed's updates and an
aggregator's states onto the bus), ``ingest`` (deliveries -> the aggregator's
``VenueUpdate`` or a gateway's ``BookState``, with liveness) and ``convert``.
"""

from dragonflybot.bus.codec import (
    BookMsg,
    BusCodec,
    BusMessage,
    DownMsg,
    HeartbeatMsg,
    Kind,
    ViewMsg,
)
from dragonflybot.bus.connection import BusConfig
from dragonflybot.bus.ingest import BookGate, ViewGate, run_book_ingest, run_view_ingest
from dragonflybot.bus.outlet import BookOutlet, ViewOutlet
from dragonflybot.bus.publisher import BusPublisher, PublisherStats, run_heartbeats
from dragonflybot.bus.subjects import BusNames, book_subject, feed_subject, view_subject
from dragonflybot.bus.subscriber import BusSubscriber, Received, SubscriberStats

__all__ = [
    "BookGate",
    "BookMsg",
    "BookOutlet",
    "BusCodec",
    "BusConfig",
    "BusMessage",
    "BusNames",
    "BusPublisher",
    "BusSubscriber",
    "DownMsg",
    "HeartbeatMsg",
    "Kind",
    "PublisherStats",
    "Received",
    "SubscriberStats",
    "ViewGate",
    "ViewMsg",
    "ViewOutlet",
    "book_subject",
    "feed_subject",
    "run_book_ingest",
    "run_heartbeats",
    "run_view_ingest",
    "view_subject",
]
