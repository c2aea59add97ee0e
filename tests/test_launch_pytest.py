"""launch_pytest tests: run only where ROS 2 launch exists (the robot docker image); here they skip.
The same graph is tested here as real processes by test_sim_graph.py."""

import contextlib
import time

import pytest

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest exists only on ROS machines")
launch_ros = pytest.importorskip("launch_ros")

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402

from wmpo_bringup.graph import graph  # noqa: E402


def launch(mode: str, **arguments: str):
    share = FindPackageShare("wmpo_bringup")
    arguments = {"rviz": "false", **arguments}
    return LaunchDescription(
        [
            IncludeLaunchDescription([share, f"/launch/{mode}.launch.py"], launch_arguments=arguments.items()),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


@contextlib.contextmanager
def probe():
    import rclpy

    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()


def wait_for(node, predicate, timeout: float = 60.0):
    """Spin until ``predicate()`` holds (graph state); return its last value."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        rclpy.spin_once(node, timeout_sec=0.2)
    return predicate()


def names_and_types(node) -> set[str]:
    topics = {name for name, _ in node.get_topic_names_and_types()}
    services = {name for name, _ in node.get_service_names_and_types()}
    return topics | services


@launch_pytest.fixture
def sim_launch():
    return launch("sim")


@launch_pytest.fixture
def robot_launch():
    return launch("robot")


@launch_pytest.fixture
def robot_snapshot_launch(tmp_path_factory):
    output = tmp_path_factory.mktemp("snapshots") / "bag"
    return launch("robot", rosbag2_snapshot="true", snapshot_dir=str(output), snapshot_cache_mb="50")


@launch_pytest.fixture
def imagine_launch():
    return launch("imagine")


@pytest.mark.launch(fixture=sim_launch)
def test_sim_launch_starts_every_node_of_the_graph():
    with probe() as node:
        expected = {name for spec in graph("sim") for name in spec.nodes}
        assert wait_for(node, lambda: expected <= set(node.get_node_names())), node.get_node_names()
        assert node.count_publishers("/camera/image_raw") >= 1
        # Actions appear as their hidden services: the episode manager's and the arm's.
        assert wait_for(node, lambda: "/episode_manager/run_episode/_action/send_goal" in names_and_types(node))
        assert "/arm/execute_chunk/_action/send_goal" in names_and_types(node)
        assert node.count_publishers("/arm/safety_box") == 1


@pytest.mark.launch(fixture=robot_launch)
def test_robot_launch_without_hardware_starts_the_rest_and_refuses_the_arm():
    """No RealSense, no safety limits and no VLA checkpoint in the default robot.yaml: the camera,
    the arm and the policy server exit with their clear errors; the recorder and the episode
    manager run."""
    with probe() as node:
        expected = {"recorder", "episode_manager"}
        assert wait_for(node, lambda: expected <= set(node.get_node_names())), node.get_node_names()
        assert wait_for(node, lambda: "/episode_manager/label" in names_and_types(node))
        assert "/arm/execute_chunk/_action/send_goal" not in names_and_types(node)  # refused: no limits


@pytest.mark.launch(fixture=robot_snapshot_launch)
def test_robot_launch_with_rosbag2_snapshot_offers_the_snapshot_service_to_the_episode_manager():
    from wmpo_episodes.rosbag2_snapshot import SNAPSHOT_SERVICE

    with probe() as node:
        assert wait_for(node, lambda: SNAPSHOT_SERVICE in names_and_types(node)), names_and_types(node)
        assert wait_for(node, lambda: "/episode_manager/label" in names_and_types(node))


@pytest.mark.launch(fixture=imagine_launch)
def test_imagine_launch_offers_the_world_model_and_the_trainer():
    with probe() as node:
        expected = {"world_model", "trainer"}
        assert wait_for(node, lambda: expected <= set(node.get_node_names())), node.get_node_names()
        assert wait_for(node, lambda: "/world_model/imagine" in names_and_types(node))
        assert "/trainer/train/_action/send_goal" in names_and_types(node)
        assert node.count_publishers("/world_model/imagined/image_raw") == 1
