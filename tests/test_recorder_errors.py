"""The recorder under bag errors and bad parameters: a failing writer ends only the affected
recording (kept, labelled incomplete, the reason in the StopRecording answer) and the recorder
keeps serving; every parameter is checked or read-only. A stop waits, without holding an executor
thread, for the camera frame of the arm's last state; a bag still without it when drain_timeout
runs out is kept as incomplete, and the stop answers within the episode manager's wait."""

import contextlib
import math
import re
import threading

import numpy as np
import pytest
from episode_fakes import stamp
from graph_helpers import spin_until
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import WriterError
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool

from wmpo_bringup.episode_client import EpisodeClient
from wmpo_episodes.bag_conversion import read_episode_arrays
from wmpo_episodes.dataset import DatasetError
from wmpo_episodes.episodes import read_episode_info
from wmpo_episodes.layout import INCOMING_DIR, MAX_DRAIN_TIMEOUT, MIN_SERVICE_WAIT
from wmpo_episodes.recorder_node import FINAL_FRAME, Recorder
from wmpo_episodes.typestore import episode_typestore
from wmpo_interfaces.msg import ArmAction, EpisodeSummary
from wmpo_interfaces.srv import StartRecording, StopRecording
from wmpo_robot_io.images import to_image_msg

TOPIC = "/arm/task_success"


def overrides(values: dict) -> list[Parameter]:
    return [Parameter(key, value=value) for key, value in values.items()]


@contextlib.contextmanager
def running_recorder(context, output, threads=2, **parameters):
    """The recorder spinning in a thread (on ``threads`` executor threads, 2 as its main() has it);
    yields (recorder, client node, publisher on TOPIC)."""
    recorder = Recorder(context=context, parameter_overrides=overrides({"output_dir": str(output), **parameters}))
    if threads == 1:
        executor = SingleThreadedExecutor(context=context)
    else:
        executor = MultiThreadedExecutor(num_threads=threads, context=context)
    executor.add_node(recorder)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = EpisodeClient("test_client", context=context)
    client.start = client.create_client(StartRecording, "recorder/start")
    client.stop = client.create_client(StopRecording, "recorder/stop")
    publisher = client.create_publisher(Bool, TOPIC, 10)
    try:
        assert client.start.wait_for_service(timeout_sec=30) and client.stop.wait_for_service(timeout_sec=30)
        assert spin_until(client, lambda: publisher.get_subscription_count() >= 1, timeout=30)
        yield recorder, client, publisher
    finally:
        client.destroy_node()
        executor.shutdown()
        spinner.join(timeout=10)
        recorder.destroy_node()


def call(client, service, request):
    future = service.call_async(request)
    client.spin_until(future, 10.0)
    assert future.done(), f"{service.srv_name} did not answer (did the recorder die?)"
    return future.result()


def start(client, episode_id):
    return call(client, client.start, StartRecording.Request(summary=EpisodeSummary(episode_id=episode_id)))


def stop(client, episode_id, outcome="success"):
    summary = EpisodeSummary(episode_id=episode_id, outcome=outcome, success_step=-1)
    return call(client, client.stop, StopRecording.Request(summary=summary, keep=True))


def messages_on(bag, topic) -> int:
    with AnyReader([bag], default_typestore=episode_typestore()) as reader:
        return sum(1 for connection, _, _ in reader.messages() if connection.topic == topic)


def test_a_writer_error_at_start_is_answered_and_the_recorder_keeps_serving(rclpy_context, tmp_path):
    with running_recorder(rclpy_context, tmp_path) as (recorder, client, _):
        (tmp_path / INCOMING_DIR / "ep1").mkdir(parents=True)  # rosbags' Writer refuses an existing folder
        answer = start(client, "ep1")
        assert not answer.success and "exists already" in answer.message, answer.message
        assert start(client, "ep2").success
        assert stop(client, "ep2").success and read_episode_info(tmp_path / "ep2").outcome == "success"


def test_a_writer_error_mid_recording_keeps_it_as_incomplete_and_the_recorder_keeps_serving(rclpy_context, tmp_path):
    with running_recorder(rclpy_context, tmp_path) as (recorder, client, publisher):
        assert start(client, "ep1").success
        publisher.publish(Bool(data=False))
        assert spin_until(client, lambda: recorder._bag is not None and recorder._bag.message_count == 1)
        writer = recorder._bag.writer
        write = writer.write

        def fail_once(*args):  # the disk fills up for one message
            writer.write = write
            raise WriterError("disk full")

        writer.write = fail_once
        publisher.publish(Bool(data=True))
        assert spin_until(client, lambda: (tmp_path / "ep1").is_dir()), "the failed recording was not closed"
        answer = stop(client, "ep1")
        assert not answer.success and "disk full" in answer.message, answer.message
        assert answer.bag_path == str(tmp_path / "ep1")
        assert read_episode_info(tmp_path / "ep1").outcome == "incomplete"
        assert messages_on(tmp_path / "ep1", TOPIC) == 1  # what was written before the error is kept
        assert start(client, "ep2").success
        assert stop(client, "ep2").success


def test_a_recording_closed_by_the_stall_timeout_is_reported_by_stop(rclpy_context, tmp_path):
    with running_recorder(rclpy_context, tmp_path, stall_timeout=0.05, flush_period=0.02) as (_, client, _):
        assert start(client, "ep1").success
        assert spin_until(client, lambda: (tmp_path / "ep1").is_dir()), "the stalled recording was not closed"
        answer = stop(client, "ep1")
        assert not answer.success and "no executed action" in answer.message, answer.message
        assert answer.bag_path == str(tmp_path / "ep1")
        assert read_episode_info(tmp_path / "ep1").outcome == "incomplete"


class OneStepEpisode:
    """Publishes a one-step episode as the camera and the arm do (arm states at T0 and T1, the
    executed action stamped T1), all but the camera frame of T1 at first."""

    T0, T1 = 5_000_000_000, 5_050_000_000

    def __init__(self, client):
        self.client = client
        self.camera = client.create_publisher(Image, "/camera/image_raw", 10)
        self.states = client.create_publisher(JointState, "/arm/joint_states", 10)
        self.actions = client.create_publisher(ArmAction, "/arm/executed_action", 10)
        publishers = (self.camera, self.states, self.actions)
        assert spin_until(client, lambda: all(p.get_subscription_count() >= 1 for p in publishers), timeout=30)

    def frame(self, ns: int) -> None:
        self.camera.publish(to_image_msg(np.zeros((8, 8, 3), np.uint8), stamp(ns), "cam"))

    def state(self, ns: int) -> None:
        state = JointState(name=["j1"], position=[0.0])
        state.header.stamp = stamp(ns)
        self.states.publish(state)

    def all_but_the_final_frame(self, recorder) -> None:
        self.state(self.T0)
        self.frame(self.T0)
        action = ArmAction(step=0, action=[0.0] * 7)
        action.header.stamp = stamp(self.T1)
        self.actions.publish(action)
        self.state(self.T1)
        assert spin_until(self.client, lambda: recorder._bag.message_count == 4), "the episode did not arrive"

    @staticmethod
    def stop_request(episode_id: str) -> StopRecording.Request:
        summary = EpisodeSummary(episode_id=episode_id, outcome="success", success_step=0, num_steps=1)
        return StopRecording.Request(summary=summary, keep=True)


def test_stop_waits_for_the_final_frame_without_holding_an_executor_thread(rclpy_context, tmp_path):
    """The camera publishes on its own thread: under load the frame of the arm's last state comes
    after every executed action and a quiet moment. On a one-thread executor the waiting stop
    still lets that frame in, and the bag is closed with it."""
    with running_recorder(rclpy_context, tmp_path, threads=1, drain_timeout=2.0) as (recorder, client, _):
        episode = OneStepEpisode(client)
        assert start(client, "ep1").success
        episode.all_but_the_final_frame(recorder)
        stopping = client.stop.call_async(episode.stop_request("ep1"))
        assert spin_until(client, lambda: stopping.done() or recorder._awaited() == FINAL_FRAME)
        assert not stopping.done(), f"stop answered before the final frame came: {stopping.result().message}"
        episode.frame(episode.T1)
        client.spin_until(stopping, 10.0)
        assert stopping.done(), "stop did not answer after the final frame came"
        answer = stopping.result()
        assert answer.success and answer.bag_path == str(tmp_path / "ep1"), answer.message
        assert list(read_episode_arrays(tmp_path / "ep1")["frame_stamps"]) == [episode.T0, episode.T1]


def test_a_final_frame_that_never_comes_keeps_the_bag_as_incomplete_within_the_managers_wait(rclpy_context, tmp_path):
    """The stop answers within the shortest service_wait the episode manager takes (drain_timeout
    at its longest), keeps the bag labelled incomplete, and its conversion is refused instead of
    taking the previous frame again for the final observation."""
    with running_recorder(rclpy_context, tmp_path, drain_timeout=MAX_DRAIN_TIMEOUT) as (recorder, client, _):
        episode = OneStepEpisode(client)
        assert start(client, "ep1").success
        episode.all_but_the_final_frame(recorder)
        stopping = client.stop.call_async(episode.stop_request("ep1"))
        client.spin_until(stopping, MIN_SERVICE_WAIT)
        assert stopping.done(), f"stop did not answer within {MIN_SERVICE_WAIT} s"
        answer = stopping.result()
        assert not answer.success, answer.message
        assert f"no camera frame at or after the arm's last state (stamp {episode.T1})" in answer.message
        assert answer.bag_path == str(tmp_path / "ep1")
        assert read_episode_info(tmp_path / "ep1").outcome == "incomplete"
        with pytest.raises(DatasetError, match="the final observation is missing"):
            read_episode_arrays(tmp_path / "ep1")
        assert start(client, "ep2").success  # the recorder keeps serving
        assert stop(client, "ep2").success


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("stall_timeout", -1.0, "must be > 0"),
        ("stall_timeout", math.nan, "finite"),
        ("flush_period", 0.0, "must be > 0"),
        ("drain_timeout", -0.5, "must be > 0"),
        ("drain_timeout", math.inf, "finite"),
        ("drain_timeout", 2.5, r"must be <= 2.0 \(the episode manager waits 3.0 s at least"),
        ("storage", "garbage", "read-only"),
        ("storage", "sqlite3", "read-only"),
        ("queue_depth", -1, "read-only"),
        ("output_dir", "/elsewhere", "read-only"),
    ],
)
def test_bad_run_time_values_are_refused_with_the_reason(rclpy_context, tmp_path, name, value, reason):
    recorder = Recorder(context=rclpy_context, parameter_overrides=overrides({"output_dir": str(tmp_path)}))
    try:
        before = recorder.get_parameter(name).value
        (result,) = recorder.set_parameters([Parameter(name, value=value)])
        assert not result.successful, f"{name} = {value} was accepted"
        assert re.search(reason, result.reason), result.reason
        assert recorder.get_parameter(name).value == before
    finally:
        recorder.destroy_node()


def test_a_new_flush_period_takes_effect(rclpy_context, tmp_path):
    recorder = Recorder(context=rclpy_context, parameter_overrides=overrides({"output_dir": str(tmp_path)}))
    try:
        (result,) = recorder.set_parameters([Parameter("flush_period", value=0.25)])
        assert result.successful, result.reason
        assert recorder.flush_timer.timer_period_ns == 250_000_000
    finally:
        recorder.destroy_node()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"queue_depth": -1}, "queue_depth must be in [1, 100000], got -1"),
        ({"storage": "garbage"}, "storage must be one of 'mcap', 'sqlite3', got 'garbage'"),
        ({"flush_period": math.nan}, "flush_period must be a finite number"),
        ({"output_dir": ""}, "output_dir must be a folder path"),
    ],
)
def test_bad_start_up_values_are_refused_naming_each(rclpy_context, tmp_path, parameters, message):
    values = {"output_dir": str(tmp_path), **parameters}
    with pytest.raises(ValueError, match=re.escape(message)):
        Recorder(context=rclpy_context, parameter_overrides=overrides(values))
