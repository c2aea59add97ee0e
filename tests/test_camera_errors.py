"""The camera node against a failing backend and bad parameters: a backend or encoding error is
reported (log and /diagnostics) and streaming goes on when frames come again; every parameter is
checked at start-up and read-only at run time."""

import queue
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from test_node_configuration import run_node

from wmpo_robot_io.camera_node import CameraNode
from wmpo_robot_io.cameras.base import Camera, Frame


class ScriptedCamera(Camera):
    """Each read takes the next item the test put: a frame is returned, an exception raised."""

    def __init__(self):
        self.items: queue.Queue = queue.Queue()

    def connect(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        try:
            item = self.items.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    def intrinsics(self) -> None:
        return None


def spin_until(executor, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def test_backend_and_encoding_errors_are_reported_and_streaming_goes_on(rclpy_context):
    """The stream thread died silently at the first exception: no more frames, nothing reported."""
    node = CameraNode("camera", context=rclpy_context, parameter_overrides=[Parameter("diagnostics_period", value=0.1)])
    listener = Node("listener", context=rclpy_context)
    images, statuses = [], []
    listener.create_subscription(Image, "/camera/image_raw", images.append, 10)
    listener.create_subscription(DiagnosticArray, "/diagnostics", lambda array: statuses.extend(array.status), 50)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(listener)
    camera = ScriptedCamera()
    frame = np.zeros((8, 8, 3), np.uint8)

    def errors(text):
        return [s for s in statuses if s.level == DiagnosticStatus.ERROR and text in s.message]

    try:
        node.start(camera)
        assert spin_until(executor, lambda: node.image_pub.get_subscription_count())
        camera.items.put(Frame(frame, time.time_ns()))
        assert spin_until(executor, lambda: len(images) == 1)
        camera.items.put(RuntimeError("USB device disconnected"))
        assert spin_until(executor, lambda: errors("RuntimeError: USB device disconnected"))
        camera.items.put(Frame(np.zeros((8, 8, 3), np.float32), time.time_ns()))  # cannot be encoded
        assert spin_until(executor, lambda: errors("uint8"))
        camera.items.put(Frame(frame + 1, time.time_ns()))
        assert spin_until(executor, lambda: len(images) == 2)
        assert node._thread.is_alive()
        assert node.stream_errors == 2
    finally:
        executor.shutdown()
        node.stop()
        listener.destroy_node()
        node.destroy_node()
    assert images[1].data[0] == 1
    status = errors("USB device disconnected")[0]
    assert {v.key: v.value for v in status.values}["kind"] == "camera_error"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("fps", 0, "fps must be > 0"),
        ("width", -640, "width must be > 0"),
        ("rate", 0.0, "rate must be > 0"),
        ("diagnostics_period", 0.0, "diagnostics_period must be > 0"),
        ("gain", -1, "gain must be >= 0"),
        ("frame_id", "", "frame_id must not be empty"),
        ("source", "webcam", "unknown camera source 'webcam'"),
    ],
)
def test_bad_camera_parameters_are_refused_at_start_up(rclpy_context, name, value, reason):
    with pytest.raises(ValueError, match=reason):
        CameraNode("camera", context=rclpy_context, parameter_overrides=[Parameter(name, value=value)])


def test_camera_parameters_are_read_only_at_run_time(rclpy_context):
    """They were accepted at run time and ignored (the device was opened with the old ones)."""
    node = CameraNode("camera", context=rclpy_context)
    try:
        for name, value in (("fps", 15), ("width", 320), ("frame_id", "other_frame")):
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful and "read-only" in result.reason, (name, result.reason)
    finally:
        node.destroy_node()


def test_sim_camera_image_size_zero_is_refused_before_the_simulator_starts(ros_domain):
    result = run_node("wmpo_robot_io.sim_node", "-p", "image_size:=0", domain=ros_domain, timeout=60)
    assert result.returncode == 1
    assert "image_size must be in" in result.stdout + result.stderr
