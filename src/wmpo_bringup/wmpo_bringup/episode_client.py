"""A client of the episode manager's RunEpisode action (used by ``wmpo demo`` and the tests)."""

from dataclasses import dataclass

import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node

from wmpo_interfaces.action import RunEpisode


@dataclass(frozen=True)
class EpisodeResult:
    summary: dict  # EpisodeSummary fields (times in ns)
    bag_path: str  # "" when the bag was not kept
    accepted: bool = True


class EpisodeClient(Node):
    def __init__(self, name: str = "episode_client"):
        super().__init__(name)
        self.client = ActionClient(self, RunEpisode, "episode_manager/run_episode")

    def wait_for_graph(self, timeout: float) -> bool:
        """Wait until the episode manager's action server is discovered."""
        return self.client.wait_for_server(timeout_sec=timeout)

    def run_episode(
        self,
        task: str,
        seed: int = -1,
        init_state_id: int = -1,
        max_steps: int = 0,
        record_mode: str = "",
        timeout: float = 600.0,
        feedback=None,
    ) -> EpisodeResult:
        from wmpo_episodes.summary import summary_to_dict

        goal = RunEpisode.Goal(
            task=task, seed=seed, init_state_id=init_state_id, max_steps=max_steps, record_mode=record_mode
        )
        send = self.client.send_goal_async(goal, feedback_callback=feedback)
        rclpy.spin_until_future_complete(self, send, timeout_sec=30.0)
        handle = send.result()
        if handle is None or not handle.accepted:
            return EpisodeResult({}, "", accepted=False)
        result = handle.get_result_async()
        rclpy.spin_until_future_complete(self, result, timeout_sec=timeout)
        if not result.done():
            handle.cancel_goal_async()
            raise TimeoutError(f"episode did not finish within {timeout:.0f} s")
        answer = result.result().result
        return EpisodeResult(summary_to_dict(answer.summary), answer.bag_path)
