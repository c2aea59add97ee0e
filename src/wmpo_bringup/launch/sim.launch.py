"""``ros2 launch wmpo_bringup sim.launch.py``: the sim graph (see wmpo_bringup.graph); wraps wmpo.launch.py."""

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    top = PathJoinSubstitution([FindPackageShare("wmpo_bringup"), "launch", "wmpo.launch.py"])
    return LaunchDescription(
        [
            IncludeLaunchDescription(
                top,
                launch_arguments={
                    "mode": "sim",
                    "params_file": LaunchConfiguration("params_file", default=""),
                    "rviz": LaunchConfiguration("rviz", default="true"),
                    "rosbag2_snapshot": LaunchConfiguration("rosbag2_snapshot", default="false"),
                }.items(),
            )
        ]
    )
