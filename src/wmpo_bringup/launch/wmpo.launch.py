"""Top launch file: ``ros2 launch wmpo_bringup wmpo.launch.py mode:=sim|robot|imagine``.

Every mode's nodes come from wmpo_bringup.graph, the definition the pip-only runner reads too, and
so do the parameter checks made before anything starts (the robot never runs the scripted
expert) and the discovery setting of every process (outside robot mode it stays on this machine,
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, unless the environment chose a range).
Arguments: mode, params_file (default: the mode's params/<mode>.yaml), rviz (true|false),
rosbag2_snapshot (true: rosbag2's recorder in snapshot mode buffers the episode topics and the
episode manager has it write a snapshot after every unsuccessful episode), snapshot_dir,
snapshot_cache_mb.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from wmpo_bringup.environment import discovery_environment
from wmpo_bringup.graph import EPISODE_MANAGER, MODES, check_parameters, graph, mode_parameters, params_file
from wmpo_episodes.rosbag2_snapshot import SNAPSHOT_SERVICE, snapshot_record_command


def nodes_for_mode(context):
    mode = LaunchConfiguration("mode").perform(context)
    params = LaunchConfiguration("params_file").perform(context) or str(params_file(mode))
    snapshot = LaunchConfiguration("rosbag2_snapshot").perform(context).lower() == "true"
    check_parameters(mode, mode_parameters(params))  # refused: the launch stops with the reason
    env = discovery_environment(robot=mode == "robot")
    actions = []
    for spec in graph(mode):
        parameters = [params]
        if snapshot and spec == EPISODE_MANAGER:
            parameters.append({"snapshot_service": SNAPSHOT_SERVICE})
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                parameters=parameters,
                output="screen",
                emulate_tty=True,
                additional_env=env,
            )
        )
    if snapshot:
        cache = int(float(LaunchConfiguration("snapshot_cache_mb").perform(context)) * 1e6)
        output = LaunchConfiguration("snapshot_dir").perform(context)
        actions.append(ExecuteProcess(cmd=snapshot_record_command(output, cache), output="screen", additional_env=env))
    if LaunchConfiguration("rviz").perform(context).lower() in ("true", "1"):
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([FindPackageShare("wmpo_bringup"), "rviz", "wmpo.rviz"])],
                additional_env=env,
            )
        )
    return actions


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("mode", default_value="sim", choices=list(MODES)),
            DeclareLaunchArgument("params_file", default_value="", description="params YAML ('' = the mode's)"),
            DeclareLaunchArgument("rviz", default_value="true"),
            DeclareLaunchArgument("rosbag2_snapshot", default_value="false", choices=["true", "false"]),
            DeclareLaunchArgument("snapshot_dir", default_value="episodes/rosbag2_snapshots"),
            DeclareLaunchArgument("snapshot_cache_mb", default_value="500", description="ring buffer size [MB]"),
            OpaqueFunction(function=nodes_for_mode),
        ]
    )
