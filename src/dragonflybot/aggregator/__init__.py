"""Layer 4: merge the venues' top N into one consolidated view and fan it out.

``Aggregator`` consumes ``VenueUpdate`` from a memory
channel and publishes numbered ``BookState`` values; ``Fanout`` hands the newest
state to each reader at its own pace.
"""

from dragonflybot.aggregator.aggregator import (
    Aggregator,
    AggregatorStats,
    Publisher,
)
from dragonflybot.aggregator.fanout import Fanout, Subscription
from dragonflybot.aggregator.state import BookState
from dragonflybot.aggregator.table import ViewTable
from dragonflybot.aggregator.tee import tee_updates

__all__ = [
    "Aggregator",
    "AggregatorStats",
    "BookState",
    "Fanout",
    "Publisher",
    "Subscription",
    "ViewTable",
    "tee_updates",
]
