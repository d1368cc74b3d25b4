"""FIX Symbol (55) to instrument name: the one place that knows both spellings.

FIX clients name an instrument in the canonical ``BASE-QUOTE`` form
(``ETH-BTC``); the running configuration still names instruments in the compact
lower-case form the venues use in stream names (``ethbtc``). Both are accepted.
Kept apart so it can switch to the project's canonical-instrument module when
that lands, without touching the FIX session or market-data code.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

_CANONICAL: Final = re.compile(r"([A-Za-z0-9]{1,12})-([A-Za-z0-9]{1,12})")
_COMPACT: Final = re.compile(r"[a-z0-9]{2,20}")


def instrument_for_symbol(symbol: str, served: Collection[str]) -> str | None:
    """The served instrument ``symbol`` names (``ETH-BTC`` or ``ethbtc``), else ``None``."""
    canonical = _CANONICAL.fullmatch(symbol)
    if canonical:
        name = (canonical[1] + canonical[2]).lower()
    elif _COMPACT.fullmatch(symbol):
        name = symbol
    else:
        return None
    return name if name in served else None
