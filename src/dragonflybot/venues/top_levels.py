"""Partial parsing of a top-N snapshot side: only the levels the feed publishes.

A top-N stream sends a whole book in every message (Binance ``depth20``: 20 levels a
side, Bitstamp ``order_book``: 100), but the feed publishes only its configured depth
(10 by default). Decoding every level into strings and parsing every decimal cost most
of such a frame; this module decodes the leading levels only.

How: the protocol's frame decoder keeps each side as ``msgspec.Raw`` (msgspec still
checks the whole frame is well-formed JSON while skipping over it), and ``top_side``
cuts the side's bytes after the ``n``-th ``]`` and decodes that prefix (plus a closing
``]``) with the same strict ``RawLevels`` type as the full decoder. A cut that lands
inside a string leaves that string unterminated, so a wrong cut can only fail to
decode, never decode to something else; every such failure, a side shorter than ``n``
levels, or a zero amount among the first ``n`` (a top-N book drops zero levels, so it
would need more) falls back to decoding the whole side. The result is therefore
exactly the full parser's first ``n`` levels whenever the full parser accepts the frame.

What is not checked beyond the first ``n`` levels (decided in issue 14, see
docs/performance.md "Round two"): the levels' types, their decimal grammar and their
order. Such a frame is still well-formed JSON, its published top ``n`` is sound and
checked, and what lies deeper is never read: the partial parser accepts it where the
full parser skipped the whole frame. Anything wrong within the first ``n`` levels, or
any JSON syntax error anywhere, is rejected exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from dragonflybot.core.book import PriceAmount
from dragonflybot.venues.base import RawLevels

_side_decoder: Final = msgspec.json.Decoder(RawLevels)


def top_side(
    raw: msgspec.Raw, n: int | None, parse: Callable[[RawLevels], list[PriceAmount]]
) -> list[PriceAmount]:
    """The parsed levels of one side: its first ``n`` (``None``: all of them).

    Raises what the full decode raises (``msgspec.DecodeError`` or the parser's error)
    when the levels it needs are malformed.
    """
    data = bytes(raw)
    if n is not None:
        end = -1
        find = data.find
        for _ in range(n):
            end = find(b"]", end + 1)
            if end < 0:
                break
        else:
            try:
                head = _side_decoder.decode(data[: end + 1] + b"]")
            except msgspec.DecodeError:
                head = None  # a cut inside a string, a short side or a bad level: see below
            if head is not None and len(head) == n:
                levels = parse(head)
                for level in levels:
                    if not level[1]:
                        break
                else:
                    return levels
    return parse(_side_decoder.decode(data))
