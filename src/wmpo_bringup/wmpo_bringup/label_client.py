"""The operator's side of labelling: sends success / failure to the episode manager's ~/label."""

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from wmpo_interfaces.srv import LabelEpisode

SERVICE = "episode_manager/label"


class LabelClient(Node):
    """A node with one client of ``episode_manager/label``; ``label`` blocks until the answer."""

    def __init__(self, service: str = SERVICE, **kwargs):
        super().__init__("label_client", **kwargs)
        self.service = service
        self.client = self.create_client(LabelEpisode, service)
        self.spinner = SingleThreadedExecutor(context=self.context)
        self.spinner.add_node(self)

    def label(self, outcome: str, timeout: float = 5.0) -> LabelEpisode.Response:
        """Label the running episode; raise TimeoutError when the episode manager does not answer."""
        if not self.client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {self.service} not available after {timeout:.0f} s: is the graph running?")
        future = self.client.call_async(LabelEpisode.Request(outcome=outcome))
        self.spinner.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f"no answer from {self.service} within {timeout:.0f} s")
        return future.result()
