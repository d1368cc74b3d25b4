"""Partial parsing of a top-N snapshot side: only the levels the feed publishes.

A top-N stream sends a whole book in every message (Binance ``depth20``: 20 levels a
side, Bitstamp ``order_book``: 100), but the feed publishes only its configured depth
(10 by default). Decoding every level into strings and parsing every decimal cost most
of such a frame; ``TopSide`` reads the leading levels only, and reads them from what it
already knows whenever it can.

How: the protocol's frame decoder keeps each side as ``msgspec.Raw`` (msgspec still
checks the whole frame is well-formed JSON while skipping over it), and ``TopSide.read``
takes the side's bytes in three steps, each exact:

1. *Unchanged head.* A snapshot stream resends the same top levels most of the time
   (about half the frames leave a side's top 10 byte for byte as it was). When the side
   starts with the bytes of the levels the last read accepted (``[[p1],[p2],...,[pn]``,
   each ``[pi]`` a complete, validated JSON array), the side is valid JSON (msgspec
   checked it) so its first ``n`` elements are exactly those arrays: the last ``Side``
   is returned as it is, the very same tuple, which also lets the book and the change
   filter see "unchanged" by identity.
2. *Known levels.* Otherwise the side is split at ``],[`` into its first ``n`` levels'
   texts (``bytes.split`` with a bound, in C; a side of fewer levels is read whole the
   same way), and each text is looked up in a memo of
   the level texts already decoded and validated. A text not known is decoded alone
   with the strict ``tuple[str, str]`` level type and parsed (``LevelParser``). Every
   level an accepted frame holds is two decimal strings (``core.fixed.parse`` accepts
   digits and one dot only), so it contains no ``]``, ``,`` or ``[`` and the split is
   at the true level boundaries; a text cut wrongly (a separator inside a string, odd
   whitespace between levels) is not a whole level and fails to decode alone.
3. *Anything else* (a text that fails to decode, a zero amount among the first ``n``,
   which a top-N book drops so it would need more levels, odd whitespace between levels)
   falls back to decoding the whole side, exactly as the full parser does.

The result is therefore exactly the full parser's first ``n`` levels whenever the full
parser accepts the frame, and every level returned was validated exactly as the full
parser validates it. The order of the levels is checked by the book
(``TopBook.replace_sides``), which skips a side it already holds.

What is not checked beyond the first ``n`` levels (decided in issue 14, see
docs/performance.md "Round two"): the levels' types, their decimal grammar and their
order. Such a frame is still well-formed JSON, its published top ``n`` is sound and
checked, and what lies deeper is never read: the partial parser accepts it where the
full parser skipped the whole frame. Anything wrong within the first ``n`` levels, or
any JSON syntax error anywhere, is rejected exactly as before.
"""

from __future__ import annotations

from typing import Final, cast

import msgspec

from dragonflybot.core.book import Level, Side, new_level
from dragonflybot.venues.base import LevelParser, RawLevels

_side_decoder: Final = msgspec.json.Decoder(RawLevels)
_level_decoder: Final = msgspec.json.Decoder(tuple[str, str])
_SEPARATOR: Final = b"],["


class TopSide:
    """One side of a top-N snapshot stream, read as deep as it is published.

    Holds what makes the next read cheap: the bytes of the last head read and its
    ``Side``, and a bounded memo of level texts already validated.
    """

    __slots__ = ("_known", "_n", "_parse", "_prefix", "_side")

    LIMIT: Final = 4096
    """Level texts remembered (emptied when full: a venue sending ever new levels costs
    no memory); a few times the distinct levels a side's top shows in minutes."""
    LONGEST: Final = 100
    """Longer level texts are decoded every time (no venue sends them)."""

    def __init__(self, parse: LevelParser) -> None:
        self._parse = parse
        self._known: dict[bytes, Level] = {}
        self._n = 0
        self._prefix = b""
        """The bytes ``[[p1],...,[pn]`` of the last head read (empty: none to reuse)."""
        self._side: Side = ()

    def read(self, raw: msgspec.Raw, n: int | None) -> Side:
        """The side's first ``n`` nonzero levels (``None``: all of them), best first as
        sent; their order is not checked here.

        Raises what the full decode raises (``msgspec.DecodeError`` or the parser's
        error) when the levels it needs are malformed.
        """
        data = bytes(raw)
        if n is None:
            return self._full(data)
        prefix = self._prefix
        if prefix and n == self._n and data.startswith(prefix):
            return self._side
        if data.startswith(b"[["):
            pieces = data.split(_SEPARATOR, n)
            if len(pieces) > n:
                # The side goes on past the n-th level: its bytes end 2 before the rest.
                end = len(data) - len(pieces.pop()) - 2
            elif data.endswith(b"]]"):
                # The whole side, n levels or fewer. With n, a side that starts with
                # them has them first; with fewer, only the very same side (a side is
                # one JSON value: none is another one with more after it) is the same.
                end = len(data) - 1 if len(pieces) == n else len(data)
                pieces[-1] = pieces[-1][:-2]
            else:
                return self._full(data)
            pieces[0] = pieces[0][2:]
            levels = list(map(self._known.get, pieces))
            if None in levels:
                for i, level in enumerate(levels):
                    if level is None:
                        new = self._learn(pieces[i])
                        if new is None:
                            return self._full(data)
                        levels[i] = new
            side = cast(Side, tuple(levels))  # no None left
            self._n = n
            self._prefix = data[:end]
            self._side = side
            return side
        return self._full(data)

    def _learn(self, piece: bytes) -> Level | None:
        """One level's text decoded and validated alone, remembered; ``None`` when it is
        not a whole level or its amount is zero (the caller then reads the whole side)."""
        try:
            pair = _level_decoder.decode(b"[" + piece + b"]")
        except msgspec.DecodeError:
            return None
        price, amount = self._parse.level(*pair)
        if not amount:
            return None
        level = new_level(Level, (price, amount))
        if len(piece) <= self.LONGEST:
            known = self._known
            if len(known) >= self.LIMIT:
                known.clear()
            known[piece] = level
        return level

    def _full(self, data: bytes) -> Side:
        """Every level of the side decoded, zero amounts dropped: the full parser's read."""
        self._prefix = b""
        return tuple(
            new_level(Level, lv) for lv in self._parse(_side_decoder.decode(data)) if lv[1]
        )
