"""The RealSense backend on librealsense's own virtual device (rs.software_device): the real
pyrealsense2 sensor, option, profile and frame interfaces, with frames the test pushes in."""

import threading
import time

import numpy as np
import pyrealsense2 as rs
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from wmpo_robot_io.camera_node import CameraNode, camera_info_msg
from wmpo_robot_io.cameras.base import Camera, CameraError, FrameCounts
from wmpo_robot_io.cameras.realsense import RealSenseCamera, RealSenseConfig, intrinsics_from_realsense

W, H, FPS = 64, 48, 30
EPOCH_MS = 1.7e12  # 2023-11-14, in ms since the Unix epoch


def option_range(low, high, step, default):
    limits = rs.option_range()  # the 4-argument constructor swaps step and default (pyrealsense2 2.59)
    limits.min, limits.max, limits.step, limits.default = low, high, step, default
    return limits


def rs_intrinsics(model=rs.distortion.inverse_brown_conrady, coeffs=(0.1, -0.2, 0.001, 0.002, 0.03)):
    intr = rs.intrinsics()
    intr.width, intr.height = W, H
    intr.fx, intr.fy, intr.ppx, intr.ppy = 50.0, 51.0, 31.5, 23.5
    intr.model, intr.coeffs = model, list(coeffs)
    return intr


class VirtualRealSense:
    """A D400-like device: one "RGB Camera" sensor with rgb8 colour modes 64x48 at 15 and 30 Hz and the
    colour sensor's exposure options and ranges."""

    def __init__(self):
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, "000000000001")
        self.sensor = self.device.add_sensor("RGB Camera")
        self.profiles = {fps: self._add_colour_mode(uid, fps) for uid, fps in enumerate((15, FPS))}
        self.sensor.add_option(rs.option.enable_auto_exposure, option_range(0, 1, 1, 1), True)
        self.sensor.add_option(rs.option.exposure, option_range(1, 10000, 1, 156), True)
        self.sensor.add_option(rs.option.gain, option_range(0, 128, 1, 64), True)
        self.sensor.add_option(rs.option.global_time_enabled, option_range(0, 1, 1, 0), True)

    def _add_colour_mode(self, uid: int, fps: int):
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.color, 0, uid
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = W, H, fps, 3, rs.format.rgb8
        stream.intrinsics = rs_intrinsics()
        return self.sensor.add_video_stream(stream).as_video_stream_profile()

    def push(self, number: int, timestamp_ms: float, domain=rs.timestamp_domain.global_time) -> None:
        """Deliver one 30 Hz frame (every pixel = number % 256) as the device would."""
        frame = rs.software_video_frame()
        frame.pixels = np.full((H, W, 3), number % 256, np.uint8)
        frame.bpp, frame.stride = 3, 3 * W
        frame.timestamp, frame.domain, frame.frame_number = timestamp_ms, domain, number
        frame.profile = self.profiles[FPS]
        self.sensor.on_video_frame(frame)


@pytest.fixture
def device():
    return VirtualRealSense()


@pytest.fixture
def camera(device):
    camera = RealSenseCamera(RealSenseConfig(W, H, FPS), device=device.device)
    camera.connect()
    yield camera
    camera.disconnect()


def test_device_intrinsics_become_camera_info(camera):
    info = camera_info_msg(camera.intrinsics(), Image().header)
    assert (info.width, info.height, info.distortion_model) == (W, H, "plumb_bob")
    np.testing.assert_allclose(info.k, [50.0, 0, 31.5, 0, 51.0, 23.5, 0, 0, 1])
    np.testing.assert_allclose(info.p, [50.0, 0, 31.5, 0, 0, 51.0, 23.5, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(info.d, [0.1, -0.2, 0.001, 0.002, 0.03], rtol=1e-6)  # float32 in librealsense


def test_distortion_models_map_to_their_ros_names():
    brown = intrinsics_from_realsense(rs, rs_intrinsics(rs.distortion.brown_conrady))
    assert (brown.distortion_model, len(brown.distortion)) == ("plumb_bob", 5)
    none = intrinsics_from_realsense(rs, rs_intrinsics(rs.distortion.none, (9, 9, 9, 9, 9)))
    assert (none.distortion_model, none.distortion) == ("plumb_bob", (0.0,) * 5)
    fisheye = intrinsics_from_realsense(rs, rs_intrinsics(rs.distortion.kannala_brandt4, (0.1, 0.2, 0.3, 0.4, 0)))
    assert fisheye.distortion_model == "equidistant"
    np.testing.assert_allclose(fisheye.distortion, [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    with pytest.raises(CameraError, match="modified_brown_conrady has no sensor_msgs/CameraInfo equivalent"):
        intrinsics_from_realsense(rs, rs_intrinsics(rs.distortion.modified_brown_conrady))


def test_device_timestamps_become_stamps_and_other_clocks_fall_back_to_the_host(camera, device):
    assert device.sensor.get_option(rs.option.global_time_enabled) == 1
    device.push(1, EPOCH_MS + 33.25)
    frame = camera.read(timeout=1.0)
    assert (frame.stamp_ns, frame.clock, frame.frame_number) == (1_700_000_000_033_250_000, "global_time", 1)
    assert frame.image.shape == (H, W, 3) and frame.image[0, 0, 0] == 1
    device.push(2, EPOCH_MS + 66.5, rs.timestamp_domain.system_time)
    frame = camera.read(timeout=1.0)
    assert (frame.stamp_ns, frame.clock) == (1_700_000_000_066_500_000, "system_time")
    before = time.time_ns()
    device.push(3, 12_345.0, rs.timestamp_domain.hardware_clock)  # ms since the device powered up
    frame = camera.read(timeout=1.0)
    assert before <= frame.stamp_ns <= time.time_ns() and frame.clock == "host"
    assert camera.read(timeout=0.01) is None


def test_frame_number_gaps_are_counted_as_dropped_frames(camera, device):
    for number in (7, 8, 11, 12, 13, 20):
        device.push(number, EPOCH_MS + number * 33.3)
        assert camera.read(timeout=1.0).frame_number == number
    assert camera.frame_counts() == FrameCounts(received=6, dropped=2 + 6)
    device.push(1, EPOCH_MS + 1000)  # the device restarted: its counter starts again, nothing dropped
    camera.read(timeout=1.0)
    assert camera.frame_counts() == FrameCounts(received=7, dropped=8)


def test_manual_exposure_and_gain_are_applied_to_the_colour_sensor(device):
    camera = RealSenseCamera(RealSenseConfig(W, H, FPS, auto_exposure=False, exposure=300, gain=32), device.device)
    camera.connect()
    camera.disconnect()
    options = [rs.option.enable_auto_exposure, rs.option.exposure, rs.option.gain]
    assert [device.sensor.get_option(option) for option in options] == [0, 300, 32]
    camera = RealSenseCamera(RealSenseConfig(W, H, FPS), device.device)
    camera.connect()
    camera.disconnect()
    assert device.sensor.get_option(rs.option.enable_auto_exposure) == 1


def test_out_of_range_exposure_and_unknown_modes_are_clear_errors(device):
    manual = RealSenseConfig(W, H, FPS, auto_exposure=False, exposure=20000)
    message = r"exposure 20000 is outside the RealSense colour sensor's range \[1, 10000\]"
    with pytest.raises(CameraError, match=message):
        RealSenseCamera(manual, device.device).connect()
    with pytest.raises(CameraError, match=r"gain 500 is outside .* range \[0, 128\]"):
        RealSenseCamera(RealSenseConfig(W, H, FPS, auto_exposure=False, gain=500), device.device).connect()
    with pytest.raises(CameraError, match="no rgb8 colour stream 640x480@30; it offers: 64x48@15, 64x48@30"):
        RealSenseCamera(RealSenseConfig(640, 480, 30), device.device).connect()


def spin_until(executor, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        executor.spin_once(timeout_sec=0.05)


def test_camera_node_publishes_device_stamps_camera_info_and_dropped_frames(rclpy_context, device):
    node = CameraNode("camera", context=rclpy_context, parameter_overrides=[Parameter("diagnostics_period", value=0.1)])
    listener = Node("listener", context=rclpy_context)
    received = {"images": [], "infos": [], "diagnostics": []}
    listener.create_subscription(Image, "/camera/image_raw", received["images"].append, 10)
    listener.create_subscription(CameraInfo, "/camera/camera_info", received["infos"].append, 10)
    listener.create_subscription(DiagnosticArray, "/diagnostics", received["diagnostics"].append, 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        node.start(RealSenseCamera(RealSenseConfig(W, H, FPS), device=device.device))
        spin_until(executor, lambda: all(s.get_publisher_count() for s in listener.subscriptions))
        spin_until(executor, lambda: node.image_pub.get_subscription_count() and node.info_pub.get_subscription_count())
        stamps_ms = {1: EPOCH_MS + 10.0, 2: EPOCH_MS + 43.5, 4: EPOCH_MS + 110.0}  # frame 3 never arrives
        for count, (number, stamp_ms) in enumerate(stamps_ms.items(), start=1):
            device.push(number, stamp_ms)  # one at a time, as a camera would: the backend queues only two
            spin_until(executor, lambda count=count: len(received["images"]) == len(received["infos"]) == count)

        def warned():
            statuses = [status for array in received["diagnostics"] for status in array.status]
            return [status for status in statuses if status.message.startswith("frames dropped")]

        spin_until(executor, warned)
    finally:
        executor.shutdown()
        node.stop()
        listener.destroy_node()
        node.destroy_node()
    expected_ns = [round(stamp_ms * 1000) * 1000 for stamp_ms in stamps_ms.values()]
    assert [msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec for msg in received["images"]] == expected_ns
    assert [info.header for info in received["infos"]] == [image.header for image in received["images"]]
    assert received["images"][2].data[0] == 4 and received["images"][0].header.frame_id == "camera_color_optical_frame"
    assert received["infos"][0].distortion_model == "plumb_bob" and received["infos"][0].k[0] == 50.0
    status = warned()[0]
    values = {value.key: value.value for value in status.values}
    assert status.level == DiagnosticStatus.WARN and status.message.startswith("frames dropped: 1 in the last")
    assert status.hardware_id == "RealSenseCamera"
    assert (values["dropped"], values["stamp clock"]) == ("1", "global_time")


class SilentCamera(Camera):
    """A backend that cannot count dropped frames and delivers none: each read blocks for its
    timeout, as a driver waiting for a frame does, and returns at once after disconnect."""

    def connect(self) -> None:
        self.disconnected = threading.Event()

    def read(self, timeout: float) -> None:
        self.disconnected.wait(timeout)

    def disconnect(self) -> None:
        self.disconnected.set()

    def intrinsics(self) -> None:
        return None


def test_camera_node_reports_a_stalled_camera(rclpy_context):
    node = CameraNode("camera", context=rclpy_context, parameter_overrides=[Parameter("diagnostics_period", value=0.1)])
    listener = Node("listener", context=rclpy_context)
    statuses = []
    listener.create_subscription(DiagnosticArray, "/diagnostics", lambda array: statuses.extend(array.status), 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        node.start(SilentCamera())
        spin_until(executor, lambda: statuses)
    finally:
        executor.shutdown()
        node.stop()
        listener.destroy_node()
        node.destroy_node()
    values = {value.key: value.value for value in statuses[0].values}
    assert statuses[0].level == DiagnosticStatus.WARN and statuses[0].message.startswith("no frames in the last")
    assert (values["frames"], values["dropped"]) == ("0", "unknown")
