"""A client of the episode manager's RunEpisode action (used by ``wmpo demo`` and the tests)."""

import time
from dataclasses import dataclass

from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from wmpo_common.ros.action_goals import send_goal
from wmpo_episodes.summary import summary_to_dict
from wmpo_interfaces.action import RunEpisode
from wmpo_interfaces.srv import GetActionChunk, ResetEpisode, StartRecording

GRAPH_SERVICES = {
    "arm/reset": ResetEpisode,
    "policy_server/get_action_chunk": GetActionChunk,
    "recorder/start": StartRecording,
}


@dataclass(frozen=True)
class EpisodeResult:
    summary: dict  # EpisodeSummary fields (times in ns)
    bag_path: str  # "" when the bag was not kept
    accepted: bool = True


class EpisodeClient(Node):
    def __init__(self, name: str = "episode_client", **kwargs):
        super().__init__(name, **kwargs)
        self.client = ActionClient(self, RunEpisode, "episode_manager/run_episode")
        self.spinner = SingleThreadedExecutor(context=self.context)
        self.spinner.add_node(self)

    def spin_until(self, future, timeout: float) -> None:
        self.spinner.spin_until_future_complete(future, timeout_sec=timeout)

    def wait_for_graph(self, timeout: float) -> bool:
        """Wait until the episode manager's action server and the services it calls (the arm, the
        policy server, the recorder) are discovered: nodes that load models take a while to start,
        and an episode sent earlier would end incomplete."""
        deadline = time.monotonic() + timeout
        if not self.client.wait_for_server(timeout_sec=timeout):
            return False
        for name, kind in GRAPH_SERVICES.items():
            client = self.create_client(kind, name)
            try:
                if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
                    return False
            finally:
                self.destroy_client(client)
        return True

    def run_episode(
        self,
        task: str,
        seed: int = -1,
        init_state_id: int = -1,
        max_steps: int = 0,
        record_mode: str = "",
        sampling_seed: int = -1,
        timeout: float = 600.0,
        feedback=None,
    ) -> EpisodeResult:
        goal = RunEpisode.Goal(
            task=task,
            seed=seed,
            init_state_id=init_state_id,
            max_steps=max_steps,
            record_mode=record_mode,
            sampling_seed=sampling_seed,
        )
        handle = self.send_episode_goal(goal, feedback)
        if handle is None or not handle.accepted:
            return EpisodeResult({}, "", accepted=False)
        return self.wait_for_result(handle, timeout)

    def send_episode_goal(self, goal, feedback=None):
        """Send a RunEpisode goal; return its goal handle (None if no answer within 30 s)."""
        return send_goal(self.client, goal, self.spin_until, feedback)

    def wait_for_result(self, handle, timeout: float) -> EpisodeResult:
        result = handle.get_result_async()
        self.spin_until(result, timeout)
        if not result.done():
            handle.cancel_goal_async()
            raise TimeoutError(f"episode did not finish within {timeout:.0f} s")
        answer = result.result().result
        return EpisodeResult(summary_to_dict(answer.summary), answer.bag_path)
