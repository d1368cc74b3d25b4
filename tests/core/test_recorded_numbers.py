"""Every price and amount the real venues sent parses, exactly as ``Decimal`` reads it."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from dragonflybot.core.fixed import SCALE, parse, to_float, to_str

# A level on the wire: ["price", "amount"] (Bitstamp puts a space after the comma).
LEVEL = re.compile(rb'\["([^"]*)", ?"([^"]*)"\]')
RECORDINGS = ("BINANCE.ws.1.0", "BINANCE.http.0.0", "BITSTAMP.ws.1.0", "BITSTAMP.http.0.0")


@pytest.mark.parametrize("name", RECORDINGS)
def test_recorded_levels_parse_exactly(samples_dir: Path, name: str) -> None:
    texts = {
        text.decode()
        for match in LEVEL.finditer((samples_dir / name).read_bytes())
        for text in match.groups()
    }
    assert len(texts) > 100, f"{name}: expected many distinct level values"
    for text in texts:
        value = parse(text)
        with localcontext() as exact:
            exact.prec = 100
            assert Decimal(value).scaleb(-SCALE) == Decimal(text), text
        assert to_float(value) == float(text), text
        assert Decimal(to_str(value)) == Decimal(text), text
