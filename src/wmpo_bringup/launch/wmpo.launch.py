"""Top launch file: ``ros2 launch wmpo_bringup wmpo.launch.py mode:=sim|robot|imagine``.

Every mode's nodes come from wmpo_bringup.graph, the definition the pip-only runner reads too.
Arguments: mode, params_file (default: the mode's params/<mode>.yaml), rviz (true|false).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from wmpo_bringup.graph import MODES, graph, params_file


def nodes_for_mode(context):
    mode = LaunchConfiguration("mode").perform(context)
    params = LaunchConfiguration("params_file").perform(context) or str(params_file(mode))
    return [
        Node(package=spec.package, executable=spec.executable, parameters=[params], output="screen", emulate_tty=True)
        for spec in graph(mode)
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("mode", default_value="sim", choices=list(MODES)),
            DeclareLaunchArgument("params_file", default_value="", description="params YAML ('' = the mode's)"),
            DeclareLaunchArgument("rviz", default_value="true"),
            OpaqueFunction(function=nodes_for_mode),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([FindPackageShare("wmpo_bringup"), "rviz", "wmpo.rviz"])],
                condition=IfCondition(LaunchConfiguration("rviz")),
            ),
        ]
    )
