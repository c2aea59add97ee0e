"""Robot mode end to end on hardware doubles behind their real interfaces: a virtual RealSense
(librealsense's software_device, streaming at 30 Hz), MoveIt behind the MoveItClient interface, and
the real policy server (a VLA checkpoint), recorder and episode manager. The arm cannot tell
success, so the operator's label decides the episode, or its absence makes it incomplete."""

import contextlib
import threading
import time

import pytest
from moveit_double import MoveItDouble
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.task import Future
from test_realsense_camera import FPS, H, VirtualRealSense, W
from test_vla_model import small_policy

from wmpo_bringup.episode_client import EpisodeClient
from wmpo_bringup.label_client import LabelClient
from wmpo_episodes.episode_manager_node import EpisodeManager
from wmpo_episodes.episodes import read_episode_info
from wmpo_episodes.recorder_node import Recorder
from wmpo_interfaces.action import RunEpisode
from wmpo_policy.policy_server_node import PolicyServer
from wmpo_robot_io.arm_node import ArmNode
from wmpo_robot_io.arms.moveit_arm import MoveItArm, MoveItArmConfig
from wmpo_robot_io.camera_node import CameraNode
from wmpo_robot_io.cameras.realsense import RealSenseCamera, RealSenseConfig

pytestmark = pytest.mark.graph

# Inside the double's reachable box and above its obstacle, so that every clipped step is feasible.
LIMITS = {
    "safety.workspace_min": [0.35, -0.15, 0.3],
    "safety.workspace_max": [0.55, 0.15, 0.6],
    "safety.max_translation_per_step": 0.02,
    "safety.max_rotation_per_step": 0.2,
    "safety.gripper_min": -1.0,
    "safety.gripper_max": 1.0,
    "safety.observation_timeout": 5.0,
    "safety.max_chunk_age": 5.0,
}


def overrides(values: dict) -> list[Parameter]:
    return [Parameter(key, value=value) for key, value in values.items()]


@contextlib.contextmanager
def streaming(device: VirtualRealSense):
    """Push a frame every 1/30 s stamped with the host's epoch clock (global_time), as a camera does."""
    stop = threading.Event()

    def push():
        number = 1
        while not stop.wait(1.0 / FPS):
            device.push(number, time.time() * 1000.0)
            number += 1

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def robot_graph(rclpy_context, tmp_path):
    """(episode client, label client, episode manager, MoveIt double, episodes dir), all nodes spinning."""
    context = rclpy_context
    device, double = VirtualRealSense(), MoveItDouble()
    policy = small_policy().save_pretrained(tmp_path / "policy")
    camera = CameraNode("camera", context=context)
    arm = ArmNode("arm", context=context, parameter_overrides=overrides(LIMITS))
    server = PolicyServer(context=context, parameter_overrides=overrides({"backend": "vla", "checkpoint": str(policy)}))
    recorder = Recorder(context=context, parameter_overrides=overrides({"output_dir": str(tmp_path / "episodes")}))
    manager = EpisodeManager(context=context, parameter_overrides=overrides({"label_timeout": 30.0}))
    nodes = [camera, arm, server, recorder, manager]
    arm.start(MoveItArm(MoveItArmConfig(), double))
    camera.start(RealSenseCamera(RealSenseConfig(W, H, FPS), device=device.device))
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    client = EpisodeClient("test_client", context=context)
    labeller = LabelClient(context=context)
    try:
        with streaming(device):
            spinner.start()
            assert client.wait_for_graph(timeout=60.0)
            yield client, labeller, manager, double, tmp_path / "episodes"
    finally:
        client.destroy_node()
        labeller.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        camera.stop()
        for node in nodes:
            node.destroy_node()


def run_until_budget_spent(client, steps: int):
    """Send an episode goal; return (goal handle, future done once the feedback reports the budget spent)."""
    spent = Future()

    def on_feedback(message):
        if message.feedback.step >= steps and not spent.done():
            spent.set_result(True)

    goal = RunEpisode.Goal(task="Lift", instruction="pick up the red cube", max_steps=steps, record_mode="all")
    handle = client.send_episode_goal(goal, on_feedback)
    assert handle is not None and handle.accepted
    client.spin_until(spent, 120.0)
    assert spent.done(), "the episode did not spend its budget"
    return handle


def test_the_operator_labels_a_robot_episode_and_without_a_label_it_is_incomplete(robot_graph):
    client, labeller, manager, double, episodes = robot_graph
    handle = run_until_budget_spent(client, 16)  # the manager now waits for the operator (label_timeout)
    answer = labeller.label("success", timeout=30.0)
    result = client.wait_for_result(handle, 60.0)
    assert answer.success, answer.message
    s = result.summary
    assert (s["outcome"], s["num_steps"], s["success_step"]) == ("success", 16, answer.step)
    assert s["policy_id"] and s["instruction"] == "pick up the red cube"
    info = read_episode_info(result.bag_path)
    assert info.outcome == "success" and info.path.parent == episodes
    assert len(double.moves) > 0  # the MoveIt double executed the filtered steps

    manager.set_parameters([Parameter("label_timeout", value=0.5)])
    handle = run_until_budget_spent(client, 8)
    result = client.wait_for_result(handle, 60.0)  # nobody labels it
    assert result.summary["outcome"] == "incomplete" and result.summary["num_steps"] == 8
    assert read_episode_info(result.bag_path).outcome == "incomplete"  # kept, labelled as what it is
