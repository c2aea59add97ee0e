"""The episode manager against doubles of the arm, the policy server and the recorder: an episode
whose recording failed is never a success, and every parameter is checked or read-only."""

import contextlib
import math
import re
import threading

import pytest
from action_msgs.msg import GoalStatus
from rclpy.action import ActionServer
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from wmpo_bringup.episode_client import EpisodeClient
from wmpo_episodes.episode_manager_node import EpisodeManager
from wmpo_interfaces.action import ExecuteChunk, RunEpisode
from wmpo_interfaces.msg import ActionChunk
from wmpo_interfaces.srv import GetActionChunk, ResetEpisode, StartRecording, StopRecording

EARLY = "the recording ended early as incomplete: no executed action for 61.0 s (stall_timeout)"


class GraphDoubles(Node):
    """arm/reset, arm/execute_chunk (succeeds at once), policy_server/get_action_chunk, recorder/start|stop."""

    def __init__(self, context):
        super().__init__("doubles", context=context)
        group = ReentrantCallbackGroup()
        self.stop_answer = StopRecording.Response(success=True, message="success: kept", bag_path="/bags/ep")
        self.stops: list[StopRecording.Request] = []
        self.create_service(ResetEpisode, "/arm/reset", self._reset, callback_group=group)
        self.create_service(GetActionChunk, "/policy_server/get_action_chunk", self._chunk, callback_group=group)
        self.create_service(StartRecording, "/recorder/start", self._start, callback_group=group)
        self.create_service(StopRecording, "/recorder/stop", self._stop, callback_group=group)
        self.arm = ActionServer(self, ExecuteChunk, "/arm/execute_chunk", self._execute, callback_group=group)

    def _reset(self, _request, response):
        response.success, response.instruction, response.default_max_steps = True, "lift", 16
        response.stamp = self.get_clock().now().to_msg()
        return response

    def _chunk(self, _request, response):
        response.success = True
        response.chunk = ActionChunk(horizon=8, action_dim=7, actions=[0.0] * 56, policy_id="double/1")
        response.chunk.header.stamp = self.get_clock().now().to_msg()
        return response

    def _start(self, request, response):
        response.success, response.bag_path = True, f"/bags/.incoming/{request.summary.episode_id}"
        return response

    def _stop(self, request, response):
        self.stops.append(request)
        answer = self.stop_answer
        response.success, response.message, response.bag_path = answer.success, answer.message, answer.bag_path
        return response

    def _execute(self, goal_handle):
        result = ExecuteChunk.Result(completed=True, success_known=True, task_success=True)
        result.steps_executed = result.success_step = goal_handle.request.chunk.horizon
        result.last_step_time = self.get_clock().now().to_msg()
        goal_handle.succeed()
        return result


@contextlib.contextmanager
def running_manager(context, **parameters):
    """(episode manager, doubles, client, parameter client), all spinning."""
    manager = EpisodeManager(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()]
    )
    doubles = GraphDoubles(context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    executor.add_node(manager)
    executor.add_node(doubles)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = EpisodeClient("test_client", context=context)
    try:
        assert client.wait_for_graph(timeout=30.0)
        parameters = AsyncParameterClient(client, "episode_manager")
        assert parameters.wait_for_services(timeout_sec=30)
        yield manager, doubles, client, parameters
    finally:
        client.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        doubles.destroy_node()
        manager.destroy_node()


def run_episode(client):
    """(result, goal status) of one Lift episode."""
    handle = client.send_episode_goal(RunEpisode.Goal(task="Lift", record_mode="all"))
    assert handle is not None and handle.accepted
    future = handle.get_result_async()
    client.spin_until(future, 60.0)
    assert future.done(), "the episode did not end"
    return future.result().result, future.result().status


def test_an_episode_whose_recording_failed_is_never_a_success(rclpy_context):
    with running_manager(rclpy_context) as (_, doubles, client, _):
        result, status = run_episode(client)
        assert (result.summary.outcome, status, result.bag_path) == ("success", GoalStatus.STATUS_SUCCEEDED, "/bags/ep")

        doubles.stop_answer = StopRecording.Response(success=False, message=EARLY, bag_path="/bags/ep2")
        result, status = run_episode(client)
        assert result.summary.outcome == "incomplete", f"reported {result.summary.outcome} with a failed recording"
        assert status == GoalStatus.STATUS_ABORTED
        assert result.bag_path == "/bags/ep2"  # the incomplete bag the recorder kept


def set_remote(client, parameters, name, value):
    future = parameters.set_parameters([Parameter(name, value=value)])
    client.spin_until(future, 30.0)
    assert future.done(), f"no answer to setting {name}"
    (result,) = future.result().results
    return result


BAD_VALUES = [
    ("record_mode", "garbage", "must be one of 'all', 'failures', 'none'"),
    ("policy_timeout", 0.0, "must be > 0"),
    ("arm_timeout", math.nan, "finite"),
    ("reset_timeout", -1.0, "must be > 0"),
    ("execute_steps", -1, "must be >= 0"),
    ("service_wait", math.inf, "finite"),
    ("service_wait", 1.0, "must be >= 3.0"),  # below the recorder's longest drain_timeout and a margin
    ("label_timeout", -1.0, "must be >= 0"),
    ("label_timeout", math.nan, "finite"),
    ("success_share", 5.0, r"must be in \[0.0, 1.0\]"),
    ("action_noise_std", [math.nan] * 7, "element 0 must be a finite number"),
    ("action_noise_std", [0.1] * 3, "must be 7 numbers"),
    ("action_noise_std", [-0.1] + [0.0] * 6, "element 0 must be >= 0"),
    ("snapshot_service", "/rosbag2_recorder/snapshot", "read-only"),
]


def test_bad_run_time_values_are_refused_with_the_reason_and_episodes_still_succeed(rclpy_context):
    with running_manager(rclpy_context) as (manager, _, client, parameters):
        for name, value, reason in BAD_VALUES:
            before = manager.get_parameter(name).value
            result = set_remote(client, parameters, name, value)
            assert not result.successful, f"{name} = {value} was accepted"
            assert re.search(reason, result.reason), (name, result.reason)
            assert manager.get_parameter(name).value == before
        result, status = run_episode(client)
        assert (result.summary.outcome, status) == ("success", GoalStatus.STATUS_SUCCEEDED)


@pytest.mark.parametrize(("name", "value", "reason"), [v for v in BAD_VALUES if v[2] != "read-only"])
def test_bad_start_up_values_are_refused_naming_each(rclpy_context, name, value, reason):
    with pytest.raises(ValueError, match=f"{re.escape(name)} .*{reason}"):
        EpisodeManager(context=rclpy_context, parameter_overrides=[Parameter(name, value=value)])
