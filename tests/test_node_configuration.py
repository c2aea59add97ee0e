"""Wrong parameters and missing hardware: nodes refuse to start with a clear message."""

import subprocess
import sys

import numpy as np
import pytest
from rclpy.parameter import Parameter

from wmpo_bringup.environment import node_environment
from wmpo_robot_io.arm_node import ArmNode, SafetyConfigError
from wmpo_robot_io.arms.base import Arm, ArmState, EpisodeStart
from wmpo_robot_io.cameras.base import CameraError
from wmpo_robot_io.cameras.realsense import RealSenseCamera, RealSenseConfig


class HardwareArmDouble(Arm):
    """Stands in for a physical arm (none here); only its safety-relevant contract matters."""

    is_real_hardware = True

    def reset(self, task, seed, init_state_id):
        return EpisodeStart(self.state)

    def apply(self, action):
        return self.state

    def hold(self):
        pass

    @property
    def state(self):
        return ArmState(0, 0, np.zeros(3), np.array([0, 0, 0, 1.0]), [], np.zeros(7), np.zeros(2))

    @property
    def control_period(self):
        return 0.05


def run_node(module: str, *ros_args: str, domain: int, timeout: float = 60) -> subprocess.CompletedProcess:
    env = node_environment(domain_id=domain)
    cmd = [sys.executable, "-m", module, "--ros-args", *ros_args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_hardware_arm_refuses_to_start_without_explicit_limits(rclpy_context):
    node = ArmNode("arm", context=rclpy_context)
    try:
        with pytest.raises(SafetyConfigError, match="safety.workspace_min.*safety.max_chunk_age"):
            node.start(HardwareArmDouble())
    finally:
        node.destroy_node()


def test_hardware_arm_starts_with_explicit_limits(rclpy_context):
    limits = {
        "safety.workspace_min": [0.2, -0.3, 0.05],
        "safety.workspace_max": [0.6, 0.3, 0.5],
        "safety.max_translation_per_step": 0.01,
        "safety.max_rotation_per_step": 0.05,
        "safety.gripper_min": -1.0,
        "safety.gripper_max": 1.0,
        "safety.observation_timeout": 0.5,
        "safety.max_chunk_age": 1.0,
    }
    overrides = [Parameter(k, value=v) for k, v in limits.items()]
    node = ArmNode("arm", context=rclpy_context, parameter_overrides=overrides)
    try:
        node.start(HardwareArmDouble())
        assert node.filter.limits.workspace_max == (0.6, 0.3, 0.5)
    finally:
        node.destroy_node()


def test_inverted_workspace_box_is_a_configuration_error(rclpy_context):
    overrides = [
        Parameter("safety.workspace_min", value=[0.5, 0.0, 1.0]),
        Parameter("safety.workspace_max", value=[0.0, 0.4, 1.3]),
    ]
    from wmpo_robot_io.arms.sim_arm import SimArm
    from wmpo_robot_io.sim.world import SimWorld

    node = ArmNode("arm", context=rclpy_context, parameter_overrides=overrides)
    try:
        with pytest.raises(SafetyConfigError, match="min < max"):
            node.start(SimArm(SimWorld()))
    finally:
        node.destroy_node()


def test_realsense_without_a_device_is_a_clear_error():
    with pytest.raises(CameraError, match="no RealSense device connected"):
        RealSenseCamera(RealSenseConfig()).connect()


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("wmpo_robot_io.camera_node", ["-p", "source:=realsense"], "no RealSense device connected"),
        ("wmpo_robot_io.camera_node", ["-p", "source:=webcam"], "unknown camera source 'webcam'"),
        ("wmpo_robot_io.camera_node", ["-p", "source:=bag", "-p", "bag_path:=/nonexistent"], "not a rosbag2 bag"),
        (
            "wmpo_episodes.recorder_node",
            ["-p", "storage:=parquet"],
            "storage must be one of 'mcap', 'sqlite3', got 'parquet'",
        ),
        ("wmpo_policy.policy_server_node", ["-p", "backend:=openvla"], "unknown policy backend 'openvla'"),
        (
            "wmpo_robot_io.arm_node",
            [],
            "moveit_py is not available (No module named 'moveit'): the MoveIt arm backend needs ROS 2 Jazzy "
            "with ros-jazzy-moveit-py (apt), as in the docker/robot.Dockerfile image",
        ),
        ("wmpo_robot_io.arm_node", ["-p", "backend:=servo"], "backend must be one of 'moveit', got 'servo'"),
        ("wmpo_robot_io.arm_node", ["-p", "moveit.max_velocity_scaling:=2.0"], "must be in (0, 1], got 2.0"),
        ("wmpo_worldmodel.world_model_node", ["-p", "world_model:=/nonexistent"], "not a world-model checkpoint"),
        (
            "wmpo_episodes.episode_manager_node",
            ["-p", "snapshot_service:=/rosbag2_recorder/snapshot"],
            "snapshot_service needs rosbag2_interfaces",
        ),
    ],
)
def test_node_processes_exit_non_zero_with_the_reason(tmp_path, ros_domain, module, args, message):
    if module.endswith("recorder_node"):
        args = [*args, "-p", f"output_dir:={tmp_path}"]
    result = run_node(module, *args, domain=ros_domain)
    assert result.returncode == 1
    assert message in result.stdout + result.stderr
