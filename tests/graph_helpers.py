"""Starting the real sim graph (node processes on DDS) for a test module, and talking to it and its arm."""

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from wmpo_bringup.environment import node_environment
from wmpo_bringup.episode_client import EpisodeClient
from wmpo_bringup.runner import GraphProcesses
from wmpo_common.ros.action_goals import send_goal
from wmpo_interfaces.action import ExecuteChunk
from wmpo_interfaces.msg import ActionChunk
from wmpo_interfaces.srv import ResetEpisode

FAST_SIM = {"camera": {"image_size": 64}}


@contextlib.contextmanager
def running_sim_graph(tmp: Path, domain_id: int, overrides: dict | None = None):
    """Yield (processes, client node, episodes dir) with the sim graph up and discovered."""
    episodes = tmp / "episodes"
    merged = {**FAST_SIM, "recorder": {"output_dir": str(episodes)}}
    for node, values in (overrides or {}).items():
        merged[node] = {**merged.get(node, {}), **values}
    env = node_environment(domain_id=domain_id, log_dir=str(tmp / "ros_logs"))
    processes = GraphProcesses("sim", tmp / "logs", overrides=merged, env=env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    processes.start()
    client = EpisodeClient("test_client", context=context)
    try:
        if not client.wait_for_graph(timeout=90.0):
            processes.check()
            raise TimeoutError("the episode manager and its services were not discovered within 90 s")
        yield processes, client, episodes
    finally:
        client.destroy_node()
        processes.stop()
        rclpy.try_shutdown(context=context)


def module_sim_graph(name: str, overrides: dict | None = None):
    """A module-scoped fixture yielding running_sim_graph's (processes, client node, episodes dir):
    ``graph = module_sim_graph("my_graph")`` in a test module."""

    @pytest.fixture(scope="module")
    def graph(tmp_path_factory):
        from conftest import next_domain_id

        with running_sim_graph(tmp_path_factory.mktemp(name), next_domain_id(), overrides) as running:
            yield running

    return graph


def wait_for_services(node, processes, services: dict, timeout: float = 90.0) -> None:
    """Wait until every node of the graph offers its service (graph state, not a sleep)."""
    for name, kind in services.items():
        client = node.create_client(kind, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                processes.check()
                raise TimeoutError(f"service {name} not available within {timeout:.0f} s")
        finally:
            node.destroy_client(client)


class ArmDriver:
    """Direct access to the arm node, bypassing the policy (as a buggy policy would)."""

    def __init__(self, node):
        self.node = node
        self.execute = ActionClient(node, ExecuteChunk, "arm/execute_chunk")
        self.reset_client = node.create_client(ResetEpisode, "arm/reset")
        self.release = node.create_client(Trigger, "arm/release_estop")
        self.estop = node.create_publisher(Bool, "estop", 10)
        self.bad_images = node.create_publisher(Image, "camera/image_raw", 10)
        self.diagnostics: list[DiagnosticStatus] = []
        self.poses: list[PoseStamped] = []
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.extend(m.status), 50)
        node.create_subscription(PoseStamped, "arm/eef_pose", self.poses.append, 50)
        assert self.execute.wait_for_server(timeout_sec=30) and self.reset_client.wait_for_service(timeout_sec=30)

    def call(self, client, request):
        future = client.call_async(request)
        self.node.spin_until(future, 30.0)
        return future.result()

    def reset(self, seed=0):
        assert self.call(self.reset_client, ResetEpisode.Request(task="Lift", seed=seed, init_state_id=-1)).success

    def run_chunk(self, actions: np.ndarray):
        chunk = ActionChunk(horizon=len(actions), action_dim=7, actions=[float(v) for v in actions.reshape(-1)])
        chunk.header.stamp = self.node.get_clock().now().to_msg()
        return self.execute_chunk(chunk)

    def execute_chunk(self, chunk: ActionChunk):
        """Send ``chunk`` as it is (stamp included); the wrapped result (status, result)."""
        handle = send_goal(self.execute, ExecuteChunk.Goal(chunk=chunk), self.node.spin_until)
        assert handle is not None, "arm/execute_chunk did not answer"
        result = handle.get_result_async()
        self.node.spin_until(result, 30.0)
        return result.result()


def spin_until(node, predicate, timeout=10.0):
    """Spin the test node until ``predicate()`` is truthy (graph state, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        node.spinner.spin_once(timeout_sec=0.05)
    return predicate()


def diagnostic(arm, kind):
    return next((s for s in arm.diagnostics if any(v.key == "kind" and v.value == kind for v in s.values)), None)
