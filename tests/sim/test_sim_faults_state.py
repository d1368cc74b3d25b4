"""Fault decisions per frame, sans-I/O."""

from __future__ import annotations

import random

import pytest

from dragonflybot.errors import ConfigError
from dragonflybot.sim.faults import NO_FAULTS, Action, Faults, FaultState
from dragonflybot.sim.frames import FrameKind, Outgoing

DIFF = Outgoing('{"d":1}', FrameKind.DIFF, 6)
CONTROL = Outgoing('{"result":null,"id":1}', FrameKind.CONTROL)


def state() -> FaultState:
    return FaultState(random.Random(0), lambda variant, frame: f"garbage{variant}", lambda: "bye")


def run(faults: Faults, frames: list[Outgoing]) -> list[Action]:
    s = state()
    out: list[Action] = []
    for frame in frames:
        out += s.decide(frame, faults)
        if out and out[-1] == ("close", 0.0):
            break
    return out


def test_no_faults_sends_everything() -> None:
    assert run(NO_FAULTS, [CONTROL, DIFF, DIFF]) == [
        ("frame", CONTROL),
        ("frame", DIFF),
        ("frame", DIFF),
    ]


def test_drop_after_counts_every_message() -> None:
    actions = run(Faults(drop_after=3), [CONTROL, DIFF, DIFF, DIFF, DIFF])
    assert actions == [("frame", CONTROL), ("frame", DIFF), ("frame", DIFF), ("close", 0.0)]


def test_gap_every_skips_only_diffs() -> None:
    snapshot = Outgoing("{}", FrameKind.SNAPSHOT, 1)
    actions = run(Faults(gap_every=2), [CONTROL, DIFF, snapshot, DIFF, DIFF, DIFF])
    assert actions == [("frame", CONTROL), ("frame", DIFF), ("frame", snapshot), ("frame", DIFF)]


def test_malformed_every_makes_every_nth_message_garbage_cycling_variants() -> None:
    actions = run(Faults(malformed_every=3), [CONTROL] + [DIFF] * 8)
    positions = [i + 1 for i, a in enumerate(actions) if a[0] == "text"]
    assert positions == [3, 6, 9, 12]
    variants = [actions[p - 1][1] for p in positions]
    assert variants == ["garbage0", "garbage1", "garbage2", "garbage0"]
    # Garbage is inserted, never instead of a frame: all 9 frames still go out.
    assert sum(a[0] == "frame" for a in actions) == 9


def test_reconnect_notice_once_then_close_after_grace() -> None:
    actions = run(Faults(reconnect_after=2, reconnect_grace=3.0), [DIFF, DIFF, DIFF, DIFF])
    assert actions == [
        ("frame", DIFF),
        ("frame", DIFF),
        ("text", "bye"),
        ("close", 3.0),
        ("frame", DIFF),
        ("frame", DIFF),
    ]


def test_stall_fires_once_per_faults_instance() -> None:
    s = state()
    faults = Faults(stall_after=1, stall_seconds=2.0)
    assert s.decide(DIFF, faults) == [("frame", DIFF), ("stall", 2.0)]
    assert s.decide(DIFF, faults) == [("frame", DIFF)]
    again = Faults(stall_after=1, stall_seconds=2.0)
    assert s.decide(DIFF, again) == [("frame", DIFF), ("stall", 2.0)]


def test_drop_probability_one_closes_after_the_first_data_frame() -> None:
    actions = run(Faults(drop_probability=1.0), [CONTROL, DIFF, DIFF])
    assert actions == [("frame", CONTROL), ("frame", DIFF), ("close", 0.0)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"drop_after": 0},
        {"gap_every": 0},
        {"drop_probability": 1.5},
        {"stall_seconds": -1},
        {"max_frames_per_second": 0},
    ],
)
def test_invalid_knobs_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Faults(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_frames_passed_in_one_step_count_as_decided_one_by_one(count: int) -> None:
    """A writer's fast path (no fault in force) counts its batch with ``passed``: faults
    switched on afterwards see the same message count as after ``count`` decisions."""
    faults = Faults(drop_after=4, malformed_every=3)
    one_by_one, in_one_step = state(), state()
    for _ in range(count):
        one_by_one.decide(DIFF, NO_FAULTS)
    in_one_step.passed(count)
    assert [one_by_one.decide(DIFF, faults) for _ in range(4)] == [
        in_one_step.decide(DIFF, faults) for _ in range(4)
    ]
