"""Feed layers 2 and 3: per-venue subscriber and listener, one read loop per connection.

``run_feed`` connects to one venue, keeps its book through the venue's sans-I/O
protocol (``dragonflybot.venues``) and sends ``VenueView``/``VenueDown`` updates
towards the aggregator.
"""

from dragonflybot.feed.runner import run_feed
from dragonflybot.feed.stats import FeedState, FeedStats

__all__ = ["FeedState", "FeedStats", "run_feed"]
