"""OKX's book checksum: CRC32 over the best 25 bids and asks, interleaved, signed.

By ``shared/venues.md`` 6.5: for i in 0..24 take ``bid[i]`` then ``ask[i]`` where
they exist, each as ``price:size`` in the exact strings last received for that
price, join everything with ``:``, CRC32 the UTF-8 bytes and read the result as a
signed 32-bit integer (the venue's ``checksum`` field). The book keeps each
level's ``price:size`` text as its ``wire``, so a checksum is one interleave, one
join and one ``zlib.crc32``. OKX sends ``0`` since June 2026 (no checksum); the
caller skips verification then.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

LEVELS: Final = 25
"""Levels per side the checksum covers."""


def level_text(price: str, size: str) -> str:
    """A level's part of the checksum string."""
    return f"{price}:{size}"


def to_signed(value: int) -> int:
    """An unsigned 32-bit CRC read as the signed integer OKX sends."""
    return value - (1 << 32) if value & 0x80000000 else value


def checksum_text(bid_texts: Sequence[str], ask_texts: Sequence[str]) -> str:
    """The interleaved string of up to ``LEVELS`` bids and asks, best first.

    Interleaved by slice assignment (in C); past the shorter side only the longer
    one has levels, so its rest follows in order.
    """
    both = min(len(bid_texts), len(ask_texts))
    parts = [""] * (2 * both)
    parts[0::2] = bid_texts[:both]
    parts[1::2] = ask_texts[:both]
    parts += bid_texts[both:] or ask_texts[both:]
    return ":".join(parts)


def checksum(bid_texts: Sequence[str], ask_texts: Sequence[str]) -> int:
    """The signed CRC32 OKX sends in ``checksum``."""
    return to_signed(zlib.crc32(checksum_text(bid_texts, ask_texts).encode()))
