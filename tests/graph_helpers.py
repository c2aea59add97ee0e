"""Starting the real sim graph (node processes on DDS) for a test module, and talking to it."""

import contextlib
from pathlib import Path

import rclpy

from wmpo_bringup.environment import node_environment
from wmpo_bringup.episode_client import EpisodeClient
from wmpo_bringup.runner import GraphProcesses
from wmpo_interfaces.srv import GetActionChunk, ResetEpisode, StartRecording

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
            raise TimeoutError("the episode manager was not discovered within 90 s")
        wait_for_services(client, processes, SERVICES)
        yield processes, client, episodes
    finally:
        client.destroy_node()
        processes.stop()
        rclpy.try_shutdown(context=context)


SERVICES = {
    "arm/reset": ResetEpisode,
    "policy_server/get_action_chunk": GetActionChunk,
    "recorder/start": StartRecording,
}


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
