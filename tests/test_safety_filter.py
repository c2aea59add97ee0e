"""The safety filter: every refusal and every clip, reported; limits validated."""

import numpy as np
import pytest

from wmpo_robot_io.safety import ChunkRefused, SafetyFilter, SafetyLimits

LIMITS = SafetyLimits(
    workspace_min=(-0.4, -0.4, 0.8),
    workspace_max=(0.3, 0.4, 1.3),
    max_translation_per_step=0.05,
    max_rotation_per_step=0.5,
    observation_timeout=1.0,
    max_chunk_age=2.0,
)
SCALE = (0.05, 0.5)
INSIDE = np.array([0.0, 0.0, 1.0])


def ready_filter(now=10.0) -> SafetyFilter:
    f = SafetyFilter(LIMITS, SCALE)
    f.observation_received(now)
    f.motion_finished(now)
    return f


def test_finite_chunk_in_limits_passes_unchanged():
    f = ready_filter()
    chunk = np.full((8, 7), 0.1)
    np.testing.assert_array_equal(f.check_chunk(chunk, now=10.1, chunk_age=0.1), chunk)
    safe, events = f.filter_step(chunk[0], INSIDE)
    np.testing.assert_allclose(safe, chunk[0])
    assert events == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_is_refused_whole(bad):
    chunk = np.zeros((8, 7))
    chunk[5, 2] = bad
    with pytest.raises(ChunkRefused) as refused:
        ready_filter().check_chunk(chunk, now=10.1, chunk_age=0.1)
    assert refused.value.intervention.kind == "non_finite"
    assert refused.value.intervention.refused
    assert "step 5 dim 2" in str(refused.value)


@pytest.mark.parametrize("shape", [(8, 6), (0, 7), (7,)])
def test_wrong_shape_is_refused(shape):
    with pytest.raises(ChunkRefused, match="chunk must be"):
        ready_filter().check_chunk(np.zeros(shape), now=10.1, chunk_age=0.1)


def test_workspace_box_clips_the_target_onto_the_box():
    f = ready_filter()
    at_floor = np.array([0.0, 0.0, 0.81])
    safe, events = f.filter_step(np.array([0, 0, -1.0, 0, 0, 0, 0]), at_floor)  # 5 cm down, 1 cm to the box
    assert [e.kind for e in events] == ["workspace"]
    assert "on z" in events[0].message
    np.testing.assert_allclose(at_floor[2] + safe[2] * SCALE[0], 0.8)


def test_translation_and_rotation_limits_scale_the_step_down():
    f = ready_filter()
    safe, events = f.filter_step(np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0, 0]), INSIDE)
    assert {e.kind for e in events} == {"translation_limit", "rotation_limit"}
    assert np.linalg.norm(safe[:3] * SCALE[0]) == pytest.approx(0.05)
    assert np.linalg.norm(safe[3:6] * SCALE[1]) == pytest.approx(0.5)


def test_gripper_command_is_clipped_to_its_range():
    safe, events = ready_filter().filter_step(np.array([0, 0, 0, 0, 0, 0, 3.0]), INSIDE)
    assert safe[6] == 1.0
    assert [e.kind for e in events] == ["gripper_range"]


def test_estop_latches_until_released():
    f = ready_filter()
    f.latch_estop("test")
    for _ in range(2):
        with pytest.raises(ChunkRefused, match="e-stop"):
            f.check_chunk(np.zeros((8, 7)), now=10.1, chunk_age=0.1)
    f.release_estop()
    f.check_chunk(np.zeros((8, 7)), now=10.1, chunk_age=0.1)


def test_watchdog_refuses_when_observations_are_stale():
    f = SafetyFilter(LIMITS, SCALE)
    with pytest.raises(ChunkRefused, match="no camera frame"):
        f.check_chunk(np.zeros((8, 7)), now=1.0, chunk_age=0.0)
    f.observation_received(1.0)
    f.motion_finished(1.0)
    f.check_chunk(np.zeros((8, 7)), now=1.5, chunk_age=0.0)
    with pytest.raises(ChunkRefused, match="observation_timeout"):
        f.check_chunk(np.zeros((8, 7)), now=2.5, chunk_age=0.0)


def test_stale_chunk_is_refused():
    with pytest.raises(ChunkRefused, match="max_chunk_age"):
        ready_filter().check_chunk(np.zeros((8, 7)), now=10.1, chunk_age=2.5)


@pytest.mark.parametrize(
    "change",
    [
        {"workspace_min": (0.0, 0.0, 1.0), "workspace_max": (0.0, 1.0, 2.0)},
        {"max_translation_per_step": 0.0},
        {"max_rotation_per_step": float("nan")},
        {"observation_timeout": -1.0},
    ],
)
def test_invalid_limits_are_rejected(change):
    values = {**LIMITS.__dict__, **change}
    with pytest.raises(ValueError):
        SafetyLimits(**values)
