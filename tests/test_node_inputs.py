"""Bad input to the world-model and trainer nodes: paths from requests stay inside the node's
data_root, a failing reward model is reported and the node keeps serving, and every parameter is
checked (at start-up and at run time) or read-only."""

import contextlib
import os
import threading

import pytest
from episode_fakes import record_episode
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wmpo_common.confined_paths import PathOutsideRoots, confined_path
from wmpo_common.ros.action_goals import send_goal
from wmpo_interfaces.action import TrainWMPO
from wmpo_interfaces.srv import Imagine
from wmpo_jobs.graph_collector import done_within


def test_paths_are_confined_after_resolving_dots_and_symlinks(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    (root / "loop").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert confined_path(str(root / "loop" / "new"), [root]) == root / "loop" / "new"
    assert confined_path("runs/loop", [root]) == root / "loop"  # relative: from the working directory
    assert confined_path(str(root), [root]) == root
    for bad, reason in [
        (str(root / ".." / "elsewhere"), "outside the data roots"),
        (str(root / "escape" / "x"), "outside the data roots"),  # a symlink out of the root
        (str(tmp_path / "runs_other"), "outside the data roots"),  # a prefix is not a parent
        ("/etc/passwd", "resolves to /etc/passwd"),
        ("", "output is empty"),
        ("runs/\0x", "not a usable path"),
    ]:
        with pytest.raises(PathOutsideRoots, match=reason):
            confined_path(bad, [root], "output")


@contextlib.contextmanager
def spinning(context, *nodes):
    """Spin ``nodes`` on a background executor; destroy them afterwards."""
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        executor.shutdown()
        thread.join(timeout=10)
        for node in nodes:
            node.destroy_node()


def overrides(values: dict) -> list[Parameter]:
    return [Parameter(key, value=value) for key, value in values.items()]


def result_of(future, timeout: float = 60.0):
    assert done_within(future, timeout), "no answer"
    return future.result()


def test_trainer_refuses_goal_paths_outside_its_data_root_with_the_reason(rclpy_context, tmp_path):
    from wmpo_jobs.trainer_node import TrainerNode

    root = tmp_path / "runs"
    root.mkdir()
    trainer = TrainerNode(context=rclpy_context, parameter_overrides=overrides({"data_root": str(root)}))
    client = Node("trainer_client", context=rclpy_context)
    action = ActionClient(client, TrainWMPO, "trainer/train")
    inside = {"policy": str(root / "policy"), "world_model": str(root / "wm"), "demos": str(root / "demos")}
    with spinning(rclpy_context, trainer, client):
        assert action.wait_for_server(timeout_sec=30)
        for field, path in [("output", tmp_path / "elsewhere"), ("policy", root / ".." / "policy")]:
            goal = TrainWMPO.Goal(task="Lift", **{**inside, "output": str(root / "loop"), field: str(path)})
            handle = send_goal(action, goal, done_within)
            assert handle is not None and handle.accepted
            result = result_of(handle.get_result_async()).result
            assert not result.success
            assert f"{field} '{path}'" in result.message and "outside the data roots" in result.message
        assert not (tmp_path / "elsewhere").exists() and not (root / "loop").exists()  # nothing was written


def test_trainer_parameters_are_checked_and_data_root_is_read_only(rclpy_context, tmp_path):
    from wmpo_jobs.trainer_node import TrainerNode

    with pytest.raises(ValueError, match="group_size must be >= 2"):
        TrainerNode(context=rclpy_context, parameter_overrides=overrides({"group_size": 1}))
    node = TrainerNode(context=rclpy_context, parameter_overrides=overrides({"data_root": str(tmp_path)}))
    try:
        for name, value, reason in [
            ("align_steps", 0, "must be > 0"),
            ("threads", -1, "must be > 0"),
            ("real_context_fraction", 1.5, "must be in [0.0, 1.0]"),
            ("data_root", "/", "read-only"),
        ]:
            (answer,) = node.set_parameters([Parameter(name, value=value)])
            assert not answer.successful and reason in answer.reason, (name, answer.reason)
        (answer,) = node.set_parameters([Parameter("wmpo_iterations", value=2)])
        assert answer.successful
    finally:
        node.destroy_node()


@pytest.fixture
def world_model_setup(tmp_path):
    from test_world_model import tiny_pipeline

    root = tmp_path / "runs"
    wm = tiny_pipeline().save_atomically(root / "wm")
    _, inside = record_episode(root / "episodes", "Lift", {"seed": 1}, steps=4)
    _, outside = record_episode(tmp_path / "elsewhere", "Lift", {"seed": 2}, steps=4)
    values = {"world_model": str(wm), "data_root": str(root), "sampler_steps": 1, "threads": 1}
    return values, inside, outside


class BrokenReward:
    def judge(self, frames):
        raise RuntimeError("CUDA error: device-side assert triggered")


def test_world_model_confines_bag_paths_and_survives_a_failing_reward_model(rclpy_context, world_model_setup):
    from wmpo_worldmodel.world_model_node import WorldModelNode

    values, inside, outside = world_model_setup
    node = WorldModelNode(context=rclpy_context, parameter_overrides=overrides(values))
    client = Node("imagine_client", context=rclpy_context)
    imagine = client.create_client(Imagine, "world_model/imagine")
    with spinning(rclpy_context, node, client):
        assert imagine.wait_for_service(timeout_sec=30)
        refused = result_of(imagine.call_async(Imagine.Request(bag_path=str(outside))))
        assert not refused.success and "outside the data roots" in refused.message, refused.message
        node.reward = BrokenReward()
        failed = result_of(imagine.call_async(Imagine.Request(bag_path=str(inside))))
        assert not failed.success and "device-side assert" in failed.message, failed.message
        node.reward = None
        served = result_of(imagine.call_async(Imagine.Request(bag_path=str(inside))))  # still serving
        assert served.success and served.num_frames == 4, served.message


def test_world_model_parameters_are_checked_or_read_only(rclpy_context, world_model_setup):
    from wmpo_worldmodel.world_model_node import WorldModelNode

    values, _, _ = world_model_setup
    with pytest.raises(ValueError, match="playback_rate must be > 0"):
        WorldModelNode(context=rclpy_context, parameter_overrides=overrides({**values, "playback_rate": 0.0}))
    node = WorldModelNode(context=rclpy_context, parameter_overrides=overrides(values))
    try:
        for name, value, reason in [
            ("sampler", "garbage", "must be one of"),
            ("sampler_steps", 0, "must be > 0"),
            ("max_steps", -1, "must be > 0"),
            ("temperature", float("nan"), "finite"),
            ("frame_id", "", "must not be empty"),
            ("playback_rate", 5.0, "read-only"),
            ("data_root", "/", "read-only"),
            ("world_model", os.devnull, "read-only"),
        ]:
            (answer,) = node.set_parameters([Parameter(name, value=value)])
            assert not answer.successful and reason in answer.reason, (name, answer.reason)
        (answer,) = node.set_parameters([Parameter("sampler", value="euler")])
        assert answer.successful
    finally:
        node.destroy_node()
