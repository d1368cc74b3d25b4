"""Subject names and the Redis channel and key that carry each subject.

A subject is one stream of full states with its own sequence: one venue's view
of one instrument, one venue's liveness, one instrument's consolidated book.
Subjects are plain strings so they appear as-is in logs and in ``redis-cli``:

- ``view.<venue>.<instrument>``: the venue's top N (or its down notice);
- ``feed.<venue>``: the feed process's heartbeat for the venue;
- ``book.<instrument>``: the aggregator's consolidated book.

Each subject maps to a pub/sub channel and a key holding its latest message.
Both wrap the subject in a Redis Cluster hash tag (``{...}``), so the channel
and the key hash to the same slot: a sharded ``SPUBLISH`` and its ``SET`` go to
the same node, and subjects spread over the cluster's nodes.

Names are restricted to ``[A-Za-z0-9_-]`` so a subject parses back unambiguously
(``.`` separates parts; a canonical instrument is ``BASE-QUOTE``) and never
contains a brace that would change the hash tag.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from dragonflybot.errors import ConfigError

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_PREFIX: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}", re.ASCII)

VIEW: Final = "view"
FEED: Final = "feed"
BOOK: Final = "book"


def valid_name(name: str) -> bool:
    """True when ``name`` may be a venue or instrument part of a subject."""
    return _NAME.fullmatch(name) is not None


def _checked(what: str, name: str) -> str:
    if not valid_name(name):
        raise ConfigError(f"{what} name {name!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return name


def view_subject(venue: str, instrument: str) -> str:
    """The subject of ``venue``'s view of ``instrument``."""
    return f"{VIEW}.{_checked('venue', venue)}.{_checked('instrument', instrument)}"


def feed_subject(venue: str) -> str:
    """The subject of the feed process's heartbeat for ``venue``."""
    return f"{FEED}.{_checked('venue', venue)}"


def book_subject(instrument: str) -> str:
    """The subject of ``instrument``'s consolidated book."""
    return f"{BOOK}.{_checked('instrument', instrument)}"


@attrs.frozen
class BusNames:
    """Channel and key names for subjects, under one ``prefix`` (one deployment per prefix).

    Several deployments (or test runs) can share one Redis by using different
    prefixes; nothing outside this class builds a Redis name.
    """

    prefix: str = attrs.field(default="dfb")

    @prefix.validator
    def _check_prefix(self, _attribute: object, value: str) -> None:
        if _PREFIX.fullmatch(value) is None:
            raise ConfigError(f"bus prefix {value!r} is not 1-32 characters of [A-Za-z0-9_.-]")

    def channel(self, subject: str) -> str:
        """The pub/sub channel of ``subject``."""
        return f"{self.prefix}:{{{subject}}}"

    def key(self, subject: str) -> str:
        """The key holding ``subject``'s latest message (same hash slot as its channel)."""
        return f"{self.prefix}:{{{subject}}}:latest"

    def subject_of(self, channel: bytes | str) -> str | None:
        """The subject a channel name carries, or ``None`` when it is not one of ours."""
        text = channel.decode("ascii", "replace") if isinstance(channel, bytes) else channel
        head = f"{self.prefix}:{{"
        if text.startswith(head) and text.endswith("}"):
            return text[len(head) : -1]
        return None
