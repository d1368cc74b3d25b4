"""The committed generated modules must be exactly what ``make proto`` produces now.

They are committed so an install needs no protoc; this test is what stops a change
to ``proto/`` (or to the generator) from shipping with stale stubs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dragonflybot.service import protogen


def test_committed_stubs_match_regenerated(tmp_path: Path) -> None:
    pytest.importorskip(
        "grpc_tools", reason="grpcio-tools (dev extra) is needed to regenerate the stubs"
    )
    written = protogen.generate(tmp_path)

    generated = {path.name: path.read_bytes() for path in written}
    committed = {path.name: path.read_bytes() for path in protogen.OUT_DIR.glob("*.py")}

    assert sorted(committed) == sorted(generated), "generated module set differs: run `make proto`"
    stale = [name for name in sorted(generated) if committed[name] != generated[name]]
    assert not stale, f"stale generated modules {stale}: run `make proto` and commit the result"


def test_reflection_v1alpha_is_the_file_grpcio_reflection_ships() -> None:
    """Same file name and bytes as grpcio-reflection's module: both can live in one process.

    Were they different files defining the same ``grpc.reflection.v1alpha`` names,
    protobuf's default pool would refuse whichever is imported second.
    """
    theirs = pytest.importorskip("grpc_reflection.v1alpha.reflection_pb2")
    from dragonflybot.service.proto import reflection_v1alpha_pb2 as ours

    assert ours.DESCRIPTOR.name == theirs.DESCRIPTOR.name
    assert ours.DESCRIPTOR.serialized_pb == theirs.DESCRIPTOR.serialized_pb
