"""The simulated world (robosuite): seeding, initial-state ids, errors, and the scripted experts."""

import numpy as np
import pytest

from wmpo_policy.backends.base import ObjectPose, Observation, PrivilegedState
from wmpo_policy.backends.scripted_expert import ScriptedExpert
from wmpo_robot_io.sim.world import SimConfig, SimWorld


@pytest.fixture(scope="module")
def world():
    w = SimWorld(SimConfig(image_size=64))
    yield w
    w.close()


def privileged(step, task: str = "Lift") -> PrivilegedState:
    opening = float(abs(step.gripper_qpos[0] - step.gripper_qpos[1]))
    objects = {name: ObjectPose(p, q) for name, (p, q) in step.object_poses.items()}
    return PrivilegedState(task, step.step, step.eef_pos, step.eef_quat_xyzw, opening, objects)


def test_same_seed_same_episode_start_and_different_seed_differs(world):
    a = world.reset("Lift", seed=7)
    b = world.reset("Lift", seed=7)
    c = world.reset("Lift", seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.object_poses["cube_main"][0], b.object_poses["cube_main"][0])
    assert not np.allclose(a.object_poses["cube_main"][0], c.object_poses["cube_main"][0])
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8 and a.step == 0


def test_initial_state_id_fixes_the_start_whatever_the_seed(world):
    a = world.reset("Lift", seed=1, init_state_id=5)
    b = world.reset("Lift", seed=2, init_state_id=5)
    np.testing.assert_array_equal(a.object_poses["cube_main"][0], b.object_poses["cube_main"][0])


def test_steps_are_deterministic_and_counted(world):
    action = np.array([0.3, -0.2, 0.1, 0, 0, 0, -1])
    world.reset("Lift", seed=3)
    first = [world.step(action).eef_pos for _ in range(3)]
    world.reset("Lift", seed=3)
    second = [world.step(action) for _ in range(3)]
    np.testing.assert_array_equal(first[-1], second[-1].eef_pos)
    assert second[-1].step == 3


def test_bad_task_and_bad_action_are_clear_errors(world):
    with pytest.raises(ValueError, match="unknown task 'Stack'.*Lift"):
        world.reset("Stack", seed=0)
    world.reset("Lift", seed=0)
    with pytest.raises(ValueError, match="shape \\(7,\\)"):
        world.step(np.zeros(6))


def test_lift_expert_succeeds_open_loop_in_chunks(world):
    expert = ScriptedExpert()
    successes = 0
    for seed in (0, 1):
        step = world.reset("Lift", seed=seed)
        expert.reset()
        while step.step < 120 and not step.success:
            chunk = expert.predict_chunk(Observation(step.image, "", step.stamp_ns, privileged(step)))
            assert chunk.shape == (8, 7) and np.all(np.abs(chunk) <= 1.0)
            for action in chunk:
                step = world.step(action)
                if step.success:
                    break
        successes += step.success
    assert successes == 2


def test_square_expert_inserts_the_nut_open_loop_in_chunks(world):
    expert = ScriptedExpert()
    for seed in (0, 1):
        step = world.reset("NutAssemblySquare", seed=seed)
        expert.reset()
        while step.step < 300 and not step.success:
            observation = Observation(step.image, "", step.stamp_ns, privileged(step, "NutAssemblySquare"))
            for action in expert.predict_chunk(observation):
                step = world.step(action)
                if step.success:
                    break
        assert step.success, f"seed {seed}: the nut is not on the peg after {step.step} steps"


def test_expert_refuses_without_privileged_state():
    with pytest.raises(ValueError, match="TaskState"):
        ScriptedExpert().predict_chunk(Observation(np.zeros((4, 4, 3), np.uint8), "", 0))


def test_camera_pose_is_the_agentview_looking_at_the_table(world):
    step = world.reset("Lift", seed=7)
    position, rotation = world.camera_pose()
    np.testing.assert_allclose(position, [0.5, 0.0, 1.35], atol=1e-6)  # robosuite's agentview
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    cube = rotation.T @ (step.object_poses["cube_main"][0] - position)
    assert cube[2] < 0  # in front of the camera, which looks along its -z axis
