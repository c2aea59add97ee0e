"""The simulated robot: one process owning a robosuite world, with the camera and arm nodes on it.

Like a Gazebo plugin, the simulator publishes the same topics as the real drivers (``camera``,
``arm``), so everything downstream is identical in sim and robot modes. Simulator settings are
parameters of the ``camera`` node (image size, camera name, render settings) and the ``arm`` node
(control rate).
"""

import numpy as np
from rclpy.parameter import Parameter

from wmpo_common.actions import ACTION_DIM
from wmpo_common.ros import parameters as checked
from wmpo_common.ros.node_main import spin_node
from wmpo_robot_io.arm_node import ArmNode, SafetyConfigError
from wmpo_robot_io.arms.sim_arm import SimArm
from wmpo_robot_io.camera_node import CameraNode, non_empty
from wmpo_robot_io.cameras.sim_camera import SimCamera
from wmpo_robot_io.sim.tasks import TASKS
from wmpo_robot_io.sim.world import SimConfig, SimWorld

CAMERA_PARAMETERS = {  # read-only: the world is built once, at start-up
    "sim_camera": checked.Parameter("agentview", "sim: robosuite camera name", non_empty, read_only=True),
    "image_size": checked.Parameter(
        128, "sim: square image size [px], 16..1024", checked.in_range(16, 1024), read_only=True
    ),
    "fast_render": checked.Parameter(True, "sim: no MSAA, shadows or reflections (~3x faster on CPU)", read_only=True),
}
ARM_PARAMETERS = {  # read-only: the world is built once, at start-up
    "control_freq": checked.Parameter(20, "sim: control steps per second [Hz]", checked.positive, read_only=True),
    "warmup_task": checked.Parameter(
        "Lift",
        "sim: task built and stepped once at start-up ('' = none), so that the first "
        "episode does not pay for scene building and robosuite's JIT compilation",
        checked.one_of("", *TASKS),
        read_only=True,
    ),
}


def start_simulator() -> tuple[CameraNode, ArmNode]:
    """The camera and arm nodes on one robosuite world, warmed up and streaming."""
    camera = CameraNode(
        "camera", parameter_overrides=[Parameter("source", value="sim")], extra_parameters=CAMERA_PARAMETERS
    )
    arm = ArmNode("arm")
    checked.declare_parameters(arm, ARM_PARAMETERS)
    world = SimWorld(
        SimConfig(
            camera_name=camera.get_parameter("sim_camera").value,
            image_size=camera.get_parameter("image_size").value,
            control_freq=arm.get_parameter("control_freq").value,
            fast_render=camera.get_parameter("fast_render").value,
        )
    )
    try:
        warmup_task = arm.get_parameter("warmup_task").value
        if warmup_task:  # before the camera listens: no frame of it is ever published
            world.reset(warmup_task, seed=0)
            world.step(np.zeros(ACTION_DIM))
            arm.get_logger().info(f"simulator warmed up on {warmup_task}")
        arm.start(SimArm(world))
        camera.start(SimCamera(world))
    except BaseException:
        camera.stop()
        world.close()
        raise
    return camera, arm


def stop_simulator(nodes: tuple[CameraNode, ArmNode]) -> None:
    camera, arm = nodes
    camera.stop()
    arm.release()  # closes the world


def main(args=None):
    fatal = (ValueError, SafetyConfigError)
    spin_node(start_simulator, "sim", args, num_threads=4, fatal=fatal, on_exit=stop_simulator)


if __name__ == "__main__":
    main()
