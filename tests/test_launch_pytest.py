"""launch_pytest tests: run only where ROS 2 launch exists (the robot docker image); here they skip.
The same graph is tested here as real processes by test_sim_graph.py."""

import pytest

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest exists only on ROS machines")
launch_ros = pytest.importorskip("launch_ros")

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402

from wmpo_bringup.graph import graph  # noqa: E402


@launch_pytest.fixture
def sim_launch():
    share = FindPackageShare("wmpo_bringup")
    return LaunchDescription(
        [
            IncludeLaunchDescription([share, "/launch/sim.launch.py"], launch_arguments={"rviz": "false"}.items()),
            launch_pytest.actions.ReadyToTest(),
        ]
    )


@pytest.mark.launch(fixture=sim_launch)
def test_sim_launch_starts_every_node_of_the_graph():
    import rclpy

    rclpy.init()
    node = rclpy.create_node("launch_test_probe")
    try:
        expected = {name for spec in graph("sim") for name in spec.nodes}
        deadline = node.get_clock().now().nanoseconds + 60 * 10**9
        names = set()
        while node.get_clock().now().nanoseconds < deadline and not expected <= names:
            rclpy.spin_once(node, timeout_sec=0.2)
            names = set(node.get_node_names())
        assert expected <= names
        assert node.count_publishers("/camera/image_raw") >= 1
    finally:
        node.destroy_node()
        rclpy.shutdown()
