"""Process environment for the nodes when run without a ROS distro (venv with ROS 2 wheels)."""

import os
import sys


def private_domain_id() -> int:
    """The ROS_DOMAIN_ID of a job's own graph (an evaluation, a collection): ROS_DOMAIN_ID when it
    is set, else one derived from this process id (1-100), so that two jobs on one machine do not
    answer each other's services (same node names on one domain would)."""
    return int(os.environ.get("ROS_DOMAIN_ID") or 1 + os.getpid() % 100)


DISCOVERY_RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"


def discovery_environment(robot: bool, environ=None) -> dict:
    """The discovery setting of a graph's processes, shared by the launch files and the runner:
    outside robot mode DDS discovery stays on this machine (LOCALHOST) unless ``environ``
    (default os.environ) chose a range; the robot's graph keeps the DDS default (its network)."""
    environ = os.environ if environ is None else environ
    return {} if robot or DISCOVERY_RANGE in environ else {DISCOVERY_RANGE: "LOCALHOST"}


def node_environment(robot: bool = False, domain_id: int | None = None, log_dir: str | None = None) -> dict:
    """A copy of os.environ completed with what the nodes need.

    Discovery stays on this machine unless ``robot`` (``discovery_environment``).
    The venv prefix joins AMENT_PREFIX_PATH so that installed interfaces are found.
    """
    env = dict(os.environ)
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.update(discovery_environment(robot, env))
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if log_dir is not None:
        env["ROS_LOG_DIR"] = str(log_dir)
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("LP_NUM_THREADS", "1")  # llvmpipe threads oversubscribe 2 cores
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
