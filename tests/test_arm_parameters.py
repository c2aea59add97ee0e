"""The arm's parameters at run time: safety limits take effect on the next chunk, bad values are
refused with the reason (and change nothing), start-up-only parameters are read-only."""

import contextlib
import math
import re
import threading
import time

import numpy as np
import pytest
from graph_helpers import ArmDriver, diagnostic, spin_until
from moveit_double import MoveItDouble
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from wmpo_bringup.episode_client import EpisodeClient
from wmpo_common.ros.parameters import declare_parameters
from wmpo_robot_io.arm_node import ArmNode, SafetyConfigError
from wmpo_robot_io.arms.moveit_arm import MoveItArm, MoveItArmConfig

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
FORWARD = np.tile([1.0, 0, 0, 0, 0, 0, -1.0], (4, 1))  # +5 cm in x per step from home at x = 0.5


def overrides(values: dict) -> list[Parameter]:
    return [Parameter(key, value=value) for key, value in values.items()]


@contextlib.contextmanager
def running_arm(context, limits: dict = LIMITS):
    """The arm node on MoveItArm + a double, spinning; yields (node, driver, double, parameter client)."""
    double = MoveItDouble(reachable=((0.0, -0.6, 0.0), (0.8, 0.6, 0.8)))  # beyond the box: the filter decides
    node = ArmNode("arm", context=context, parameter_overrides=overrides(limits))
    node.start(MoveItArm(MoveItArmConfig(), double))
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
        parameters = AsyncParameterClient(client, "arm")
        assert parameters.wait_for_services(timeout_sec=30)
        yield node, driver, double, parameters
    finally:
        client.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        node.destroy_node()


def set_remote(driver, parameters, name, value):
    """``ros2 param set``: through the node's parameter service; the one result."""
    future = parameters.set_parameters([Parameter(name, value=value)])
    driver.node.spin_until(future, 30.0)
    assert future.done(), f"no answer to setting {name}"
    (result,) = future.result().results
    return result


def test_a_workspace_change_at_run_time_filters_the_next_chunk(rclpy_context):
    with running_arm(rclpy_context) as (node, arm, double, parameters):
        result = set_remote(arm, parameters, "safety.workspace_max", [0.55, 0.3, 0.6])
        assert result.successful, result.reason
        wrapped = arm.run_chunk(FORWARD)
        assert wrapped.status == 4 and wrapped.result.steps_executed == 4  # SUCCEEDED, clipped
        reached = max(move[0] for move in double.moves)
        assert reached == pytest.approx(0.55), f"x reached {reached}: the new workspace_max was not applied"
        assert spin_until(arm.node, lambda: diagnostic(arm, "workspace"))
        assert node.filter.limits.workspace_max == (0.55, 0.3, 0.6)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("safety.workspace_min", [0.8, -0.3, 0.2], "min < max"),
        ("safety.workspace_max", [0.7], "must be 3 numbers"),
        ("safety.workspace_max", [0.7, math.nan, 0.6], "finite"),
        ("safety.gripper_min", 2.0, r"must be in \[-1.0, 1.0\]"),
        ("safety.gripper_max", -1.0, "gripper_min must be below gripper_max"),
        ("safety.max_translation_per_step", math.nan, "finite"),
        ("safety.max_rotation_per_step", 0.0, "must be > 0"),
        ("safety.observation_timeout", -1.0, "must be > 0"),
        ("safety.max_chunk_age", math.inf, "finite"),
        ("real_time_factor", -1.0, "must be >= 0"),
    ],
)
def test_bad_run_time_values_are_refused_with_the_reason_and_change_nothing(rclpy_context, name, value, reason):
    with running_arm(rclpy_context) as (node, arm, double, parameters):
        before = node.filter.limits
        result = set_remote(arm, parameters, name, value)
        assert not result.successful, f"{name} = {value} was accepted"
        assert re.search(reason, result.reason), result.reason
        assert node.filter.limits == before
        wrapped = arm.run_chunk(FORWARD)  # still serving, with the old limits
        assert wrapped.status == 4 and max(move[0] for move in double.moves) == pytest.approx(0.7)


def test_bad_start_up_limits_are_a_configuration_error(rclpy_context):
    node = ArmNode("arm", context=rclpy_context, parameter_overrides=overrides({**LIMITS, "safety.gripper_min": 2.0}))
    try:
        with pytest.raises(SafetyConfigError, match=r"safety.gripper_min must be in \[-1.0, 1.0\], got 2.0"):
            node.start(MoveItArm(MoveItArmConfig(), MoveItDouble()))
    finally:
        node.destroy_node()


def test_start_up_only_parameters_are_read_only(rclpy_context):
    from wmpo_robot_io.arm_node import declare_hardware_parameters
    from wmpo_robot_io.sim_node import ARM_PARAMETERS

    node = Node("arm", context=rclpy_context)
    try:
        declare_hardware_parameters(node)
        declare_parameters(node, ARM_PARAMETERS)
        for name, value in [
            ("backend", "moveit"),
            ("moveit.planning_time", 2.0),
            ("moveit.group", "other"),
            ("control_freq", 10),
            ("warmup_task", ""),
        ]:
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful and "read-only" in result.reason, (name, result.reason)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"backend": "servo"}, "backend must be one of 'moveit', got 'servo'"),
        ({"control_freq": 0}, "control_freq must be > 0, got 0"),
        ({"warmup_task": "Stack"}, "warmup_task must be one of"),
    ],
)
def test_bad_start_up_values_of_the_read_only_parameters_are_refused(rclpy_context, parameters, message):
    from wmpo_robot_io.arm_node import declare_hardware_parameters
    from wmpo_robot_io.sim_node import ARM_PARAMETERS

    node = Node("arm", context=rclpy_context, parameter_overrides=overrides(parameters))
    try:
        with pytest.raises(ValueError, match=message):
            declare_hardware_parameters(node)
            declare_parameters(node, ARM_PARAMETERS)
    finally:
        node.destroy_node()
