"""Recorder node: one rosbag2 bag per episode, started and labelled by service calls.

Interfaces (node ``recorder``):
  service ~/start  wmpo_interfaces/StartRecording  open a bag in <output_dir>/.incoming/<episode_id>
  service ~/stop   wmpo_interfaces/StopRecording   label it, move it to <output_dir>/<episode_id>
                                                   (or delete it when keep is false)
  pub     ~/recovered      std_msgs/String (transient local)  bags recovered at start-up
  sub     every topic of wmpo_episodes.layout.RECORDED_TOPICS, raw CDR (no decode/re-encode)

Crash safety: buffered messages are flushed every ``flush_period``; at start-up, bags left
behind by a killed recorder are recovered and labelled ``incomplete``; on SIGINT/SIGTERM the open
bag is closed as ``incomplete``; a recording in which the arm executes nothing for
``stall_timeout`` seconds (its episode manager died) is closed as ``incomplete``.
"""

import importlib
import threading
import time
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.layout import RECORDED_TOPICS
from wmpo_episodes.node_main import spin_node
from wmpo_episodes.recovery import recover_incoming
from wmpo_episodes.summary import summary_to_dict
from wmpo_interfaces.srv import StartRecording, StopRecording

PARAMETERS = {
    "output_dir": ("episodes", "folder of the episode bags"),
    "storage": ("mcap", "bag storage: mcap | sqlite3"),
    "flush_period": (1.0, "seconds between flushes to disk (data lost at most on SIGKILL)"),
    "stall_timeout": (60.0, "close a recording as incomplete after this long without an executed action [s]"),
    "queue_depth": (100, "subscription queue depth per topic"),
    "drain_timeout": (1.0, "on stop, wait up to this long for the episode's last messages [s]"),
}
QUIET_PERIOD = 0.1  # s without any message: the episode's last messages have arrived
LATCHED_TOPICS = {"/instruction"}
STALL_TOPIC = "/arm/executed_action"


def message_class(msgtype: str):
    """'pkg/msg/Type' -> the generated Python class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class Recorder(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        for key, (default, doc) in PARAMETERS.items():
            self.declare_parameter(key, default, ParameterDescriptor(description=doc))
        self.output_dir = Path(self.get_parameter("output_dir").value).expanduser().resolve()
        self.storage = self.get_parameter("storage").value
        if self.storage not in ("mcap", "sqlite3"):
            raise ValueError(f"parameter storage must be mcap or sqlite3, got {self.storage!r}")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        recovered_pub = self.create_publisher(
            String, "~/recovered", QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        for path in recover_incoming(self.output_dir):
            self.get_logger().warning(f"recovered an interrupted episode as incomplete: {path}")
            recovered_pub.publish(String(data=str(path)))

        self._lock = threading.Lock()
        self._bag: EpisodeBagWriter | None = None
        self._start_summary: dict = {}
        self._last_activity = time.monotonic()
        self._last_message = time.monotonic()
        self._executed_in_bag = 0
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
        self.create_timer(self.get_parameter("flush_period").value, self._on_timer)

    def _on_message(self, topic: str, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        self.received[topic] += 1
        with self._lock:
            if self._bag is None:
                return
            self._bag.write(topic, now, data)
            self._last_message = time.monotonic()
            if topic == STALL_TOPIC:
                self._last_activity = self._last_message
                self._executed_in_bag += 1

    def _on_start(self, request, response):
        summary = summary_to_dict(request.summary)
        with self._lock:
            if self._bag is not None:
                response.success = False
                response.message = f"already recording {self._bag.staging_path.name}; stop it first"
                return response
            try:
                self._bag = EpisodeBagWriter(self.output_dir, summary["episode_id"], summary, self.storage)
            except (ValueError, FileExistsError, OSError) as error:
                response.success, response.message = False, str(error)
                self.get_logger().error(f"cannot start recording: {error}")
                return response
            self._start_summary = summary
            self._last_activity = time.monotonic()
            self._executed_in_bag = 0
            response.success, response.bag_path = True, str(self._bag.staging_path)
        self.get_logger().info(f"recording {summary['episode_id']}")
        return response

    def _drain(self, executed_steps: int) -> None:
        """Wait (bounded by drain_timeout) until the episode's last messages are in: every executed
        action, then a quiet moment. Messages travel on other paths than the stop request."""
        deadline = time.monotonic() + self.get_parameter("drain_timeout").value
        while time.monotonic() < deadline:
            with self._lock:
                arrived = self._executed_in_bag >= executed_steps
                quiet = time.monotonic() - self._last_message > QUIET_PERIOD
            if arrived and quiet:
                return
            time.sleep(0.01)

    def _on_stop(self, request, response):
        summary = summary_to_dict(request.summary)
        self._drain(request.summary.num_steps)
        with self._lock:
            if self._bag is None:
                response.success, response.message = False, "not recording"
                return response
            path = self._close(summary, request.keep)
        response.success = True
        response.bag_path = str(path or "")
        response.message = f"{summary['outcome']}: {'kept ' + str(path) if path else 'dropped'}"
        self.get_logger().info(f"episode {summary['episode_id']} {response.message}")
        return response

    def _close(self, summary: dict, keep: bool) -> Path | None:
        """Close the open bag (lock held)."""
        bag, self._bag = self._bag, None
        return bag.close(summary, self.get_clock().now().nanoseconds, keep)

    def _on_timer(self) -> None:
        with self._lock:
            if self._bag is None:
                return
            self._bag.flush()
            stalled = time.monotonic() - self._last_activity
            if stalled > self.get_parameter("stall_timeout").value:
                summary = dict(self._start_summary, outcome="incomplete", end_time=self.get_clock().now().nanoseconds)
                path = self._close(summary, keep=True)
                self.get_logger().error(f"no executed action for {stalled:.0f} s: closed {path} as incomplete")

    def close_as_incomplete(self) -> None:
        """On shutdown: keep what was recorded, labelled incomplete."""
        with self._lock:
            if self._bag is not None:
                summary = dict(self._start_summary, outcome="incomplete", end_time=self.get_clock().now().nanoseconds)
                path = self._close(summary, keep=True)
                self.get_logger().warning(f"shutting down mid-episode: kept {path} as incomplete")


def main(args=None):
    spin_node(Recorder, "recorder", args, num_threads=2, on_exit=Recorder.close_as_incomplete)


if __name__ == "__main__":
    main()
