"""The MoveIt arm backend against a kinematic double behind its real client interface (no MoveIt or
arm here): delta -> target pose, refusals of unreachable and colliding targets, and the arm node's
safety filter in front of it."""

import contextlib
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from graph_helpers import ArmDriver, diagnostic, spin_until
from moveit_double import HOME, JOINTS, MoveItDouble
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState

from wmpo_bringup.episode_client import EpisodeClient
from wmpo_robot_io.arm_node import ArmNode, SafetyConfigError
from wmpo_robot_io.arms.moveit_arm import MoveItArm, MoveItArmConfig, MoveItError, delta_target
from wmpo_robot_io.safety import ChunkRefused

CONFIG = MoveItArmConfig()
SCALE = (0.05, 0.5)  # the Arm default: 1.0 = 5 cm and 0.5 rad per step, as robosuite's OSC_POSE
C, S = np.cos(0.25), np.sin(0.25)  # half of a 0.5 rad rotation


def action(dx=0.0, dy=0.0, dz=0.0, ax=0.0, ay=0.0, az=0.0, gripper=-1.0) -> np.ndarray:
    return np.array([dx, dy, dz, ax, ay, az, gripper])


def reset_arm(double: MoveItDouble) -> MoveItArm:
    arm = MoveItArm(CONFIG, double)
    arm.reset("Lift", seed=0, init_state_id=-1)
    return arm


def test_delta_target_translates_and_rotates_about_the_base_axes():
    down = np.array([1.0, 0, 0, 0])  # 180 deg about base x: the gripper points down
    position, quat = delta_target(np.array([0.5, 0, 0.3]), down, action(0.2, -0.4, 1.0, az=1.0), SCALE)
    np.testing.assert_allclose(position, [0.51, -0.02, 0.35])
    # R_z(0.5) R_x(pi): a half turn about the base x axis turned by 0.25 rad about base z. Rotating
    # about the tool's axes instead (R_x(pi) R_z(0.5)) would give (C, -S, 0, 0).
    np.testing.assert_allclose(quat, [C, S, 0, 0], atol=1e-12)
    _, quat = delta_target(np.zeros(3), np.array([0, 0, 0, 1.0]), action(ax=1.0), SCALE)
    np.testing.assert_allclose(quat, [S, 0, 0, C], atol=1e-12)
    _, quat = delta_target(np.zeros(3), down, action(), SCALE)
    np.testing.assert_allclose(quat, down)


def test_reset_opens_the_gripper_and_goes_home():
    double = MoveItDouble()
    arm = MoveItArm(CONFIG, double)
    assert arm.state is None and arm.frame_id == "world" and arm.default_limits() is None
    start = arm.reset("Lift", seed=0, init_state_id=-1)
    assert double.named == [("hand", "open"), ("panda_arm", "ready")]
    assert start.state.step == 0 and start.instruction == "" and start.default_max_steps == 0
    np.testing.assert_allclose(start.state.eef_pos, HOME[:3])
    assert start.state.joint_names == list(JOINTS) and start.state.gripper_joint_names == CONFIG.gripper_joints


def test_apply_moves_to_the_target_and_switches_the_gripper_on_its_sign():
    double = MoveItDouble()
    arm = reset_arm(double)
    state = arm.apply(action(dx=1.0, az=1.0, gripper=1.0))
    np.testing.assert_allclose(state.eef_pos, [0.55, 0, 0.3])
    np.testing.assert_allclose(state.eef_quat_xyzw, [C, S, 0, 0], atol=1e-12)
    assert double.named[-1] == ("hand", "close") and state.step == 1
    arm.apply(action(dy=0.5, gripper=0.3))  # still closed: no gripper command
    assert len(double.named) == 3 and len(double.moves) == 2
    state = arm.apply(action(gripper=-1.0))  # no arm motion, the gripper opens
    assert len(double.moves) == 2 and double.named[-1] == ("hand", "open") and state.step == 3


def test_unreachable_target_is_refused_without_motion():
    double = MoveItDouble(reachable=((0.0, -0.6, 0.0), (0.52, 0.6, 0.8)))
    arm = reset_arm(double)
    with pytest.raises(ChunkRefused, match="no IK solution for panda_hand_tcp") as refusal:
        arm.apply(action(dx=1.0))
    assert refusal.value.intervention.kind == "unreachable" and refusal.value.intervention.refused
    assert double.moves == [] and arm.state.step == 0


def test_colliding_target_is_refused_without_motion():
    double = MoveItDouble(obstacle=((0.45, 0.03, 0.25), (0.55, 0.1, 0.35)))
    arm = reset_arm(double)
    with pytest.raises(ChunkRefused, match="in collision with the planning scene") as refusal:
        arm.apply(action(dy=1.0))
    assert refusal.value.intervention.kind == "collision" and double.moves == []


def test_moveit_failure_is_a_refusal_and_hold_stops_execution():
    double = MoveItDouble()
    arm = MoveItArm(MoveItArmConfig(gripper_closed_state="grasp"), double)
    arm.reset("Lift", seed=0, init_state_id=-1)
    with pytest.raises(ChunkRefused, match="no named state 'grasp'") as refusal:
        arm.apply(action(gripper=1.0))
    assert refusal.value.intervention.kind == "motion_failed"
    arm.hold()
    assert double.stops == 1


def test_poses_must_be_in_the_planning_frame_and_the_config_is_checked():
    with pytest.raises(MoveItError, match="MoveIt plans in 'base_link' but moveit.base_frame is 'world'"):
        MoveItArm(CONFIG, MoveItDouble(planning_frame="base_link"))
    with pytest.raises(ValueError, match="max_velocity_scaling must be in"):
        MoveItArmConfig(max_velocity_scaling=0.0)


LIMITS = {
    "safety.workspace_min": [0.3, -0.3, 0.2],
    "safety.workspace_max": [0.7, 0.3, 0.6],
    "safety.max_translation_per_step": 0.05,
    "safety.max_rotation_per_step": 0.5,
    "safety.gripper_min": -1.0,
    "safety.gripper_max": 1.0,
    "safety.observation_timeout": 60.0,
    "safety.max_chunk_age": 5.0,
}


def test_arm_node_refuses_the_moveit_arm_without_explicit_limits(rclpy_context):
    node = ArmNode("arm", context=rclpy_context)
    try:
        with pytest.raises(SafetyConfigError, match="refusing to drive real hardware without explicit safety"):
            node.start(MoveItArm(CONFIG, MoveItDouble()))
    finally:
        node.destroy_node()


@contextlib.contextmanager
def running_arm_node(context, double: MoveItDouble):
    """The arm node on MoveItArm + ``double``, spinning in a thread; yields (node, driver)."""
    node = ArmNode("arm", context=context, parameter_overrides=[Parameter(k, value=v) for k, v in LIMITS.items()])
    node.start(MoveItArm(CONFIG, double))
    node.filter.observation_received(time.monotonic())  # a camera frame; the watchdog is not under test here
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = EpisodeClient("test_client", context=context)
    try:
        driver = ArmDriver(client)
        assert spin_until(client, lambda: node.diagnostics_pub.get_subscription_count() >= 1)
        driver.reset()
        yield node, driver
    finally:
        client.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()


def test_arm_node_refuses_a_nan_chunk_whole(rclpy_context):
    double = MoveItDouble()
    with running_arm_node(rclpy_context, double) as (_, arm):
        actions = np.zeros((8, 7))
        actions[3, 1] = np.nan
        wrapped = arm.run_chunk(actions)
        assert wrapped.status == 6  # ABORTED
        assert "non-finite" in wrapped.result.message and wrapped.result.steps_executed == 0
        status = spin_until(arm.node, lambda: diagnostic(arm, "non_finite"))
        assert status is not None and status.level == DiagnosticStatus.ERROR
        assert double.moves == []


def test_arm_node_clips_a_chunk_leaving_the_workspace(rclpy_context):
    double = MoveItDouble()
    with running_arm_node(rclpy_context, double) as (node, arm):
        joint_states: list[JointState] = []
        arm.node.create_subscription(JointState, "arm/joint_states", joint_states.append, 50)
        assert spin_until(arm.node, lambda: node.joint_pub.get_subscription_count() >= 1)
        down = np.tile(action(dz=-1.0), (8, 1))  # 40 cm down from z = 0.3, through the box floor at 0.2
        wrapped = arm.run_chunk(down)
        assert wrapped.status == 4 and wrapped.result.steps_executed == 8  # SUCCEEDED, clipped
        assert spin_until(arm.node, lambda: diagnostic(arm, "workspace")).level == DiagnosticStatus.WARN
        assert min(move[2] for move in double.moves) == pytest.approx(0.2)
        names = spin_until(arm.node, lambda: joint_states and joint_states[-1].name)
        assert names == [*JOINTS, *CONFIG.gripper_joints]


def test_arm_node_stops_the_chunk_at_an_unreachable_target(rclpy_context):
    double = MoveItDouble(reachable=((0.0, -0.6, 0.0), (0.62, 0.6, 0.8)))
    with running_arm_node(rclpy_context, double) as (_, arm):
        forward = np.tile(action(dx=1.0), (8, 1))  # x 0.5 -> 0.55 -> 0.60 -> 0.65: beyond reach
        wrapped = arm.run_chunk(forward)
        assert wrapped.status == 6 and wrapped.result.steps_executed == 2
        message = wrapped.result.message
        assert message.startswith("stopped after 2 steps: target [0.65") and "no IK solution" in message
        status = spin_until(arm.node, lambda: diagnostic(arm, "unreachable"))
        assert status is not None and status.level == DiagnosticStatus.ERROR
        assert double.stops == 1 and len(double.moves) == 2
