"""How a client may name an instrument: ``ETH-BTC`` (canonical) or ``ethbtc`` (compact).

Kept to one small function on purpose: the venue refactor brings a canonical
instrument module, and this is the single place to swap for it. The key ignores
case and the separators clients commonly write (``ETH-BTC``, ``eth/btc``,
``ETH_BTC``, ``ethbtc`` are one instrument), so a compact name needs no table of
quote currencies to be split.
"""

from __future__ import annotations

import re
from typing import Final

MAX_NAME_LENGTH: Final = 64
_SEPARATORS: Final = re.compile(r"[-/_]")
_VALID: Final = re.compile(r"[A-Za-z0-9]+(?:[-/_][A-Za-z0-9]+)*", re.ASCII)


def instrument_key(name: str) -> str | None:
    """The lookup key of ``name`` (``"ETHBTC"`` for ``"eth-btc"``), ``None`` if malformed.

    Malformed: empty, longer than ``MAX_NAME_LENGTH``, or anything but ASCII letters
    and digits joined by single separators. A client's name is untrusted input, so
    it is checked before it reaches a message or a log.
    """
    if not name or len(name) > MAX_NAME_LENGTH or not _VALID.fullmatch(name):
        return None
    return _SEPARATORS.sub("", name).upper()
