"""Recorder node: one rosbag2 bag per episode, started and labelled by service calls.

Interfaces (node ``recorder``):
  service ~/start  wmpo_interfaces/StartRecording  open a bag in <output_dir>/.incoming/<episode_id>
                                                   (again for the open bag's episode: success;
                                                   for another: refused, naming the open one)
  service ~/stop   wmpo_interfaces/StopRecording   label it, move it to <output_dir>/<episode_id>
                                                   (or delete it when keep is false)
  pub     ~/recovered      std_msgs/String (transient local)  bags recovered at start-up
  sub     every topic of wmpo_episodes.layout.RECORDED_TOPICS, raw CDR (no decode/re-encode); the
          latest latched safety box (CARRIED_TOPICS) opens every bag

Crash safety: buffered messages are flushed every ``flush_period``; at start-up, bags left
behind by a killed recorder are recovered and labelled ``incomplete``; on SIGINT/SIGTERM the open
bag is closed as ``incomplete``; a recording in which the arm executes nothing for
``stall_timeout`` seconds (its episode manager died) is closed as ``incomplete``, and so is one
whose bag fails to write (rosbags' ``WriterError``, ``OSError``): the error is logged, the
recorder keeps serving, and that episode's StopRecording answers ``success=false`` with the reason
(and the kept bag's path).

On stop, the recorder waits (up to ``drain_timeout``) for the episode's last messages, among them
the final observation of a bag to be kept: a camera frame stamped at or after the arm's last state
(the camera publishes on its own thread, so under load that frame can come last). The wait holds
no executor thread (the stop callback awaits a future that the message callbacks complete), and
``drain_timeout`` is at most ``layout.MAX_DRAIN_TIMEOUT``, so the answer comes within the episode
manager's ``service_wait``. A bag to be kept that still lacks its final frame is kept labelled
``incomplete``, and its StopRecording answers ``success=false`` with the stamps.
Parameters: output_dir, storage, queue_depth read-only; the rest run-time.
"""

import importlib
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import String

from wmpo_common.ros.deadlines import Deadlines
from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, declare_parameters, in_range, one_of, positive
from wmpo_common.stamps import SECOND, BadStamp, stamp_ns
from wmpo_episodes.bag_writer import BAG_ERRORS, EpisodeBagWriter
from wmpo_episodes.layout import MAX_DRAIN_TIMEOUT, MIN_SERVICE_WAIT, RECORDED_TOPICS, STORAGE_PLUGINS
from wmpo_episodes.recovery import recover_incoming
from wmpo_episodes.summary import TIME_FIELDS, summary_to_dict
from wmpo_interfaces.msg import EpisodeSummary
from wmpo_interfaces.srv import StartRecording, StopRecording


def folder_path(value) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"must be a folder path, got {value!r}"


def drain_time(value) -> str | None:
    """A drain_timeout: > 0 and short enough that the stop answers within the manager's service_wait."""
    if reason := positive(value):
        return reason
    if value > MAX_DRAIN_TIMEOUT:
        return (
            f"must be <= {MAX_DRAIN_TIMEOUT} (the episode manager waits {MIN_SERVICE_WAIT} s at least for "
            f"the stop's answer), got {value!r}"
        )
    return None


PARAMETERS = {
    "output_dir": Parameter("episodes", "folder of the episode bags", folder_path, read_only=True),
    "storage": Parameter("mcap", "bag storage: mcap | sqlite3", one_of(*STORAGE_PLUGINS), read_only=True),
    "flush_period": Parameter(1.0, "seconds between flushes to disk (data lost at most on SIGKILL)", positive),
    "stall_timeout": Parameter(
        180.0,
        "close a recording as incomplete after this long without an executed action [s]; longer than the "
        "episode manager's longest wait without one (reset_timeout + policy_timeout, label_timeout)",
        positive,
    ),
    "queue_depth": Parameter(100, "subscription queue depth per topic", in_range(1, 100_000), read_only=True),
    "drain_timeout": Parameter(
        1.0,
        f"on stop, wait up to this long for the episode's last messages and final camera frame "
        f"[s, at most {MAX_DRAIN_TIMEOUT}]",
        drain_time,
    ),
}
QUIET_PERIOD = 0.1  # s without any message: the episode's last messages have arrived
LATCHED_TOPICS = {"/instruction", "/arm/safety_box"}
# State published once and latched (the safety box at the arm's start-up): its latest message is
# written at the start of every bag, so each episode bag shows it.
CARRIED_TOPICS = {"/arm/safety_box"}
STALL_TOPIC = "/arm/executed_action"
CAMERA_TOPIC = "/camera/image_raw"
STATE_TOPICS = {"/arm/joint_states", STALL_TOPIC}  # stamped with the arm state they report or led to
# What a stop waits for, in this order (Recorder._awaited).
EXECUTED_ACTIONS, FINAL_FRAME, QUIET = "every executed action", "the final camera frame", "a quiet moment"


@dataclass(frozen=True)
class EndedEarly:
    """A recording the recorder closed itself (stall, bag error); its StopRecording answer says why."""

    episode_id: str
    reason: str
    path: Path | None  # the bag kept as incomplete; None when it could not even be closed


@dataclass(frozen=True)
class Drain:
    """A stop waiting for its episode's last messages; ``done`` completes once they are in."""

    executed_steps: int
    need_frame: bool  # the bag is to be kept: its final camera frame is awaited too
    done: Future


OUTCOMES = (EpisodeSummary.OUTCOME_SUCCESS, EpisodeSummary.OUTCOME_FAILURE, EpisodeSummary.OUTCOME_INCOMPLETE)


def summary_problem(summary: EpisodeSummary, label: bool) -> str | None:
    """Why ``summary`` cannot go into a bag (a time that is not one; with ``label``, an outcome
    that is not one of OUTCOMES), or None."""
    for name in TIME_FIELDS:  # a time that is not one did not fit the bag's int32 seconds: the recorder died
        try:
            stamp_ns(getattr(summary, name), name)
        except BadStamp as error:
            return str(error)
    if label and summary.outcome not in OUTCOMES:
        return f"outcome {summary.outcome!r} must be one of {', '.join(OUTCOMES)}"
    return None


def left_for_recovery(staging: Path) -> str:
    return f"its messages stay in {staging} and are recovered as incomplete at the next recorder start"


def header_stamp_ns(data: bytes) -> int:
    """The header stamp [ns] of a raw CDR message whose first field is a std_msgs/Header: int32 sec
    and uint32 nanosec right after the 4-byte encapsulation header (its second byte odd: little
    endian); -1 for a message too short to hold one (it is still recorded, its stamp not used)."""
    if len(data) < 12:
        return -1
    sec, nanosec = struct.unpack_from("<iI" if data[1] & 1 else ">iI", data, 4)
    return sec * SECOND + nanosec


def message_class(msgtype: str):
    """'pkg/msg/Type' -> the generated Python class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class Recorder(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        declare_parameters(self, PARAMETERS)
        self.output_dir = Path(self.get_parameter("output_dir").value).expanduser().resolve()
        self.storage = self.get_parameter("storage").value
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"output_dir {self.output_dir}: {error}") from None
        recovered_pub = self.create_publisher(
            String, "~/recovered", QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        for path in recover_incoming(self.output_dir):
            self.get_logger().warning(f"recovered an interrupted episode as incomplete: {path}")
            recovered_pub.publish(String(data=str(path)))

        self._lock = threading.Lock()
        self._bag: EpisodeBagWriter | None = None
        self._ended: EndedEarly | None = None  # the last recording, if the recorder closed it itself
        self._start_summary: dict = {}
        self._carried: dict[str, bytes] = {}  # the latest message of each CARRIED_TOPICS topic
        self._last_activity = time.monotonic()
        self._last_message = time.monotonic()
        self._executed_in_bag = 0
        self._last_state_stamp = self._last_frame_stamp = -1  # ns, newest in the open bag (-1: none)
        self._stopping: Drain | None = None  # the stop in progress
        self.received = dict.fromkeys(RECORDED_TOPICS, 0)
        messages, services = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()
        depth = self.get_parameter("queue_depth").value
        for topic, msgtype in RECORDED_TOPICS.items():
            qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
            if topic in LATCHED_TOPICS:
                qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
            self.create_subscription(
                message_class(msgtype),
                topic,
                lambda data, topic=topic: self._on_message(topic, data),
                qos,
                raw=True,
                callback_group=messages,
            )
        self.create_service(StartRecording, "~/start", self._on_start, callback_group=services)
        self.create_service(StopRecording, "~/stop", self._on_stop, callback_group=services)
        self.flush_timer = self.create_timer(self.get_parameter("flush_period").value, self._on_timer)
        self.deadlines = Deadlines(self, before_check=self._check_drain)  # its tick sees the quiet moment come
        self.add_post_set_parameters_callback(self._on_parameters_set)

    def _on_parameters_set(self, parameters) -> None:
        for parameter in parameters:
            if parameter.name == "flush_period":
                self.flush_timer.timer_period_ns = int(parameter.value * 1e9)

    def _on_message(self, topic: str, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        self.received[topic] += 1
        with self._lock:
            if topic in CARRIED_TOPICS:
                self._carried[topic] = data
            if self._bag is None:
                return
            try:
                self._bag.write(topic, now, data)
            except BAG_ERRORS as error:
                self._end_early(f"writing {topic} failed: {error}")
                return
            self._last_message = time.monotonic()
            if topic == STALL_TOPIC:
                self._last_activity = self._last_message
                self._executed_in_bag += 1
            if topic in STATE_TOPICS:
                self._last_state_stamp = max(self._last_state_stamp, header_stamp_ns(data))
            elif topic == CAMERA_TOPIC:
                self._last_frame_stamp = max(self._last_frame_stamp, header_stamp_ns(data))
            self._wake_drain()

    def _refuse(self, response, message: str):
        response.success, response.message = False, message
        self.get_logger().error(f"refused: {message}")
        return response

    def _on_start(self, request, response):
        if problem := summary_problem(request.summary, label=False):
            return self._refuse(response, f"cannot start recording: {problem}")
        summary = summary_to_dict(request.summary)
        with self._lock:
            if self._bag is not None:
                recording = self._start_summary["episode_id"]
                if recording == summary["episode_id"]:  # the request again, sent after no answer
                    response.success, response.bag_path = True, str(self._bag.staging_path)
                    response.message = f"already recording {recording}"
                    return response
                response.success, response.recording_episode_id = False, recording
                response.message = f"already recording {recording}; stop it first"
                return response
            try:
                self._bag = EpisodeBagWriter(self.output_dir, summary["episode_id"], summary, self.storage)
            except (ValueError, *BAG_ERRORS) as error:
                response.success, response.message = False, str(error)
                self.get_logger().error(f"cannot start recording: {error}")
                return response
            self._ended = None
            self._start_summary = summary
            self._last_activity = time.monotonic()
            self._executed_in_bag = 0
            self._last_state_stamp = self._last_frame_stamp = -1
            for topic, data in self._carried.items():
                try:
                    self._bag.write(topic, self.get_clock().now().nanoseconds, data)
                except BAG_ERRORS as error:
                    self._end_early(f"writing {topic} failed: {error}")
                    response.success, response.message = False, self._ended.reason
                    return response
            response.success, response.bag_path = True, str(self._bag.staging_path)
        self.get_logger().info(f"recording {summary['episode_id']}")
        return response

    def _awaited(self) -> str | None:
        """What the stop in progress still waits for (EXECUTED_ACTIONS, FINAL_FRAME, QUIET), or None
        when nothing is (no stop, or no bag open) (lock held)."""
        drain = self._stopping
        if drain is None or self._bag is None:
            return None
        if self._executed_in_bag < drain.executed_steps:
            return EXECUTED_ACTIONS
        if drain.need_frame and self._last_frame_stamp < self._last_state_stamp:
            return FINAL_FRAME
        if time.monotonic() - self._last_message <= QUIET_PERIOD:
            return QUIET
        return None

    def _wake_drain(self) -> None:
        """Complete the waiting stop's future once it awaits nothing more (lock held)."""
        drain = self._stopping
        if drain is not None and not (drain.done.done() or drain.done.cancelled()) and self._awaited() is None:
            drain.done.set_result(None)

    def _check_drain(self) -> None:
        with self._lock:
            self._wake_drain()

    async def _drain(self, executed_steps: int, need_frame: bool) -> None:
        """Wait, without holding an executor thread and at most drain_timeout, until the episode's
        last messages are in: every executed action, the final camera frame (stamped at or after
        the arm's last state) if ``need_frame``, then a quiet moment. Messages travel on other paths
        than the stop request."""
        drain = Drain(executed_steps, need_frame, Future())
        with self._lock:
            self._stopping = drain
            self._wake_drain()
        await self.deadlines.watch(drain.done, self.get_parameter("drain_timeout").value)
        with self._lock:
            self._stopping = None

    def _missing_final_frame(self) -> str | None:
        """Why the open bag lacks its final observation, or None (lock held)."""
        if self._last_frame_stamp >= self._last_state_stamp:
            return None
        return (
            f"no camera frame at or after the arm's last state (stamp {self._last_state_stamp}) within "
            f"drain_timeout; the newest frame is stamped {self._last_frame_stamp}"
        )

    async def _on_stop(self, request, response):
        if problem := summary_problem(request.summary, label=True):
            return self._refuse(response, f"cannot label the bag: {problem}")
        summary = summary_to_dict(request.summary)
        with self._lock:
            recording = self._start_summary.get("episode_id") if self._bag is not None else None
        if recording is not None and summary["episode_id"] != recording:
            return self._refuse(response, f"recording {recording}, not {summary['episode_id']}")
        await self._drain(request.summary.num_steps, need_frame=request.keep)
        with self._lock:
            if self._bag is None:
                return self._answer_ended(summary["episode_id"], response)
            missing = self._missing_final_frame() if request.keep else None  # a dropped bag needs none
            if missing:
                summary["outcome"] = EpisodeSummary.OUTCOME_INCOMPLETE
            staging = self._bag.staging_path
            try:
                path = self._close(summary, request.keep)
            except BAG_ERRORS as error:
                response.success = False
                response.message = f"closing the bag failed: {error}; {left_for_recovery(staging)}"
                self.get_logger().error(f"episode {summary['episode_id']}: {response.message}")
                return response
        if missing:
            response.success, response.bag_path = False, str(path)
            response.message = f"kept {path} as incomplete: its final observation is missing: {missing}"
            self.get_logger().error(f"episode {summary['episode_id']}: {response.message}")
            return response
        response.success = True
        response.bag_path = str(path or "")
        response.message = f"{summary['outcome']}: {'kept ' + str(path) if path else 'dropped'}"
        self.get_logger().info(f"episode {summary['episode_id']} {response.message}")
        return response

    def _answer_ended(self, episode_id: str, response):
        """The StopRecording answer when no bag is open: a failure, with why if the recorder ended it."""
        ended, response.success = self._ended, False
        if ended is None or ended.episode_id != episode_id:
            response.message = "not recording"
            return response
        response.message = f"the recording ended early as incomplete: {ended.reason}"
        response.bag_path = str(ended.path or "")
        self._ended = None
        return response

    def _close(self, summary: dict, keep: bool) -> Path | None:
        """Close the open bag (lock held); the recorder is free for the next one even if this raises."""
        bag, self._bag = self._bag, None
        return bag.close(summary, self.get_clock().now().nanoseconds, keep)

    def _end_early(self, reason: str) -> None:
        """Close the open bag as incomplete because of ``reason`` (lock held); its StopRecording says why."""
        staging = self._bag.staging_path
        summary = dict(self._start_summary, outcome="incomplete", end_time=self.get_clock().now().nanoseconds)
        try:
            path = self._close(summary, keep=True)
            self.get_logger().error(f"{reason}: closed {path} as incomplete")
        except BAG_ERRORS as error:
            path = None
            reason = f"{reason}; closing it failed too ({error}): {left_for_recovery(staging)}"
            self.get_logger().error(reason)
        self._ended = EndedEarly(summary["episode_id"], reason, path)

    def _on_timer(self) -> None:
        with self._lock:
            if self._bag is None:
                return
            try:
                self._bag.flush()
            except BAG_ERRORS as error:
                self._end_early(f"flushing the bag failed: {error}")
                return
            stalled = time.monotonic() - self._last_activity
            if stalled > self.get_parameter("stall_timeout").value:
                self._end_early(f"no executed action for {stalled:.1f} s (stall_timeout)")

    def close_as_incomplete(self) -> None:
        """On shutdown: keep what was recorded, labelled incomplete."""
        with self._lock:
            if self._bag is not None:
                self._end_early("shutting down mid-episode")


def main(args=None):
    spin_node(Recorder, "recorder", args, num_threads=2, on_exit=Recorder.close_as_incomplete)


if __name__ == "__main__":
    main()
