"""docs/configuration.md lists every key of every config Struct.

The Structs are walked from ``AppConfig`` through the types of their fields, so a
key (or a whole new Struct) added anywhere under it fails this test until it is
documented in the section of its Struct.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec

from dragonflybot.config import AppConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def structs_under(root: type[msgspec.Struct]) -> list[type[msgspec.Struct]]:
    """``root`` and every Struct type reachable through its fields' types, once each."""
    found: list[type[msgspec.Struct]] = []
    todo: list[object] = [root]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            if tp in found:
                continue
            found.append(tp)
            todo.extend(field.type for field in msgspec.structs.fields(tp))
        else:
            todo.extend(typing.get_args(tp))  # list[X], X | None, Annotated[X, ...]
    return found


def sections(text: str) -> dict[str, str]:
    """Section text by the Struct named in its heading: ``## Venues (`VenueConfig`)``."""
    out: dict[str, str] = {}
    parts = re.split(r"^## .*?\(`(\w+)`\)\s*$", text, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        out[name] = body
    return out


def test_the_walk_finds_every_config_struct() -> None:
    names = {s.__name__ for s in structs_under(AppConfig)}
    assert {"AppConfig", "InstrumentConfig", "VenueConfig", "SimulationConfig"} <= names


def test_every_config_key_is_documented_in_its_section() -> None:
    documented = sections(DOC.read_text(encoding="utf-8"))
    missing = []
    for struct in structs_under(AppConfig):
        body = documented.get(struct.__name__)
        if body is None:
            missing.append(f"section for {struct.__name__}")
            continue
        for field in msgspec.structs.fields(struct):
            if not re.search(rf"^\| `{re.escape(field.encode_name)}` \|", body, flags=re.M):
                missing.append(f"{struct.__name__}.{field.encode_name}")
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_documented_defaults_match_the_structs() -> None:
    """Plain-literal defaults in the tables are the Structs' (a changed default fails)."""
    documented = sections(DOC.read_text(encoding="utf-8"))
    for struct in structs_under(AppConfig):
        body = documented[struct.__name__]
        for field in msgspec.structs.fields(struct):
            default = field.default
            if isinstance(default, bool) or not isinstance(default, int | float | str):
                continue
            row = re.search(
                rf"^\| `{re.escape(field.encode_name)}` \|[^|]*\| ([^|]*) \|", body, re.M
            )
            assert row is not None
            shown = row.group(1).strip()
            literal = f'`"{default}"`' if isinstance(default, str) else f"`{default!r}`"
            assert shown == literal, f"{struct.__name__}.{field.encode_name}: {shown} != {literal}"
