"""Camera node: publishes ~/image_raw (rgb8) and ~/camera_info from a camera backend, and its
frame rate and dropped frames on /diagnostics every ``diagnostics_period``.

Sources: ``realsense`` (pyrealsense2) and ``bag`` (replay of a recorded bag) in this executable;
``sim`` (the simulator's camera) inside the sim process, which owns the simulator.

A backend or encoding error does not stop the stream: it is logged and reported on /diagnostics
(ERROR, kind camera_error), and reading goes on after ``RETRY_PERIOD``. Every parameter is
checked at start-up and read-only (the device is opened once): restart the node to change one.
"""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, declare_parameters, non_empty, non_negative, positive
from wmpo_robot_io.cameras.bag_replay import BagReplayCamera
from wmpo_robot_io.cameras.base import Camera, CameraError, Intrinsics
from wmpo_robot_io.cameras.realsense import RealSenseCamera, RealSenseConfig
from wmpo_robot_io.images import to_image_msg

SOURCES = ("realsense", "bag", "sim")
RETRY_PERIOD = 0.5  # s before reading again after a backend or encoding error


def known_source(value) -> str | None:
    return None if value in SOURCES else f"unknown camera source {value!r}; use realsense or bag"


def _read_only(default, doc, check=None) -> Parameter:
    return Parameter(default, doc, check, read_only=True)


PARAMETERS = {  # read-only: the camera is opened once, at start-up
    "source": _read_only(
        "realsense", "where frames come from: realsense | bag (sim: only inside sim_node)", known_source
    ),
    "frame_id": _read_only("camera_color_optical_frame", "frame_id of the images (REP-103 optical frame)", non_empty),
    "width": _read_only(640, "realsense: image width [px]", positive),
    "height": _read_only(480, "realsense: image height [px]", positive),
    "fps": _read_only(30, "realsense: frame rate [Hz]", positive),
    "serial": _read_only("", "realsense: device serial number ('' = the only device); checked on connecting"),
    "auto_exposure": _read_only(True, "realsense: colour auto exposure (false: the fixed exposure and gain below)"),
    "exposure": _read_only(
        156,
        "realsense: manual exposure, colour sensor units (D400 RGB: 100 us, 156 = 15.6 ms); "
        "checked against the sensor's range on connecting",
        non_negative,
    ),
    "gain": _read_only(
        64, "realsense: manual gain, colour sensor units (D400 RGB: 0..128); checked on connecting", non_negative
    ),
    "bag_path": _read_only("", "bag: episode bag folder to replay; checked on connecting"),
    "bag_topic": _read_only("/camera/image_raw", "bag: image topic to replay", non_empty),
    "rate": _read_only(1.0, "bag: replay speed factor (> 0)", positive),
    "loop": _read_only(False, "bag: start again at the end"),
    "diagnostics_period": _read_only(
        1.0, "period of the /diagnostics status (frames, dropped frames, errors, rate) [s]", positive
    ),
}


def camera_info_msg(intrinsics: Intrinsics, header) -> CameraInfo:
    info = CameraInfo()
    info.header = header
    info.width, info.height = intrinsics.width, intrinsics.height
    info.distortion_model = intrinsics.distortion_model
    info.d = list(intrinsics.distortion)
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


class CameraNode(Node):
    """Publishes every frame of its camera. Call ``start(camera)`` once the backend exists.
    ``extra_parameters``: a backend's own (the simulator's), declared and checked with the rest."""

    def __init__(self, name: str = "camera", extra_parameters: dict[str, Parameter] | None = None, **kwargs):
        super().__init__(name, **kwargs)
        declare_parameters(self, PARAMETERS | (extra_parameters or {}))
        self.image_pub = self.create_publisher(Image, "~/image_raw", 10)
        self.info_pub = self.create_publisher(CameraInfo, "~/camera_info", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.frames_published = 0
        self.stream_errors = 0  # backend or encoding errors while streaming
        self.stamp_clock = ""  # Frame.clock of the latest frame
        self._last_error = ""
        self._logged_error = ""  # the error last logged in the current run of errors ('' = frames flow)
        self._reported = (0.0, 0, 0, 0)  # monotonic time [s], frames published, dropped, errors at the last report
        self._camera: Camera | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, name="camera", daemon=True)

    def param(self, key: str):
        return self.get_parameter(key).value

    def camera_from_parameters(self) -> Camera:
        source = self.param("source")
        if source == "realsense":
            keys = ("width", "height", "fps", "serial", "auto_exposure", "exposure", "gain")
            return RealSenseCamera(RealSenseConfig(**{key: self.param(key) for key in keys}))
        if source == "bag":
            if not self.param("bag_path"):
                raise CameraError("source 'bag' needs the parameter bag_path")
            return BagReplayCamera(
                self.param("bag_path"), self.param("bag_topic"), self.param("rate"), self.param("loop")
            )
        if source == "sim":
            raise CameraError("source 'sim' runs only inside sim_node, which owns the simulator")
        raise CameraError(f"unknown camera source {source!r}; use realsense or bag")

    def start(self, camera: Camera) -> None:
        camera.connect()
        self._camera = camera
        self._reported = (time.monotonic(), 0, 0, 0)
        self.create_timer(self.param("diagnostics_period"), self.report)
        self._thread.start()
        self.get_logger().info(f"streaming from {type(camera).__name__}")

    def _stream(self) -> None:
        frame_id = self.param("frame_id")
        while not self._stop.is_set():
            try:
                self._publish_next(frame_id)
            except Exception as error:  # noqa: BLE001  any backend or encoding error: report it, read on
                self._stream_error(f"{type(error).__name__}: {error}")
                self._stop.wait(RETRY_PERIOD)

    def _publish_next(self, frame_id: str) -> None:
        frame = self._camera.read(timeout=0.2)
        if frame is None:
            return
        stamp = Time(nanoseconds=frame.stamp_ns).to_msg()
        image = to_image_msg(frame.image, stamp, frame_id)
        intrinsics = self._camera.intrinsics()
        self.image_pub.publish(image)
        if intrinsics is not None:
            self.info_pub.publish(camera_info_msg(intrinsics, image.header))
        self.stamp_clock = frame.clock
        self.frames_published += 1
        if self._logged_error:
            self._logged_error = ""
            self.get_logger().info(f"frames again after {self.stream_errors} camera errors in all")

    def _stream_error(self, message: str) -> None:
        """Log and report an error (once while it repeats); the periodic report counts them all."""
        self.stream_errors += 1
        self._last_error = message
        if message == self._logged_error:
            return
        self._logged_error = message
        self.get_logger().error(f"camera error #{self.stream_errors}: {message}; reading again")
        status = DiagnosticStatus(level=DiagnosticStatus.ERROR, name=f"{self.get_name()}: camera")
        status.hardware_id = type(self._camera).__name__
        status.message = f"camera error: {message}"
        status.values = [
            KeyValue(key="kind", value="camera_error"),
            KeyValue(key="errors", value=str(self.stream_errors)),
        ]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    def report(self) -> None:
        """Publish the camera's /diagnostics status: ERROR when backend or encoding errors came since
        the last report, WARN (and a WARN log) when frames were dropped, WARN when none came."""
        now, published, counts = time.monotonic(), self.frames_published, self._camera.frame_counts()
        dropped = counts.dropped if counts is not None else 0
        errors = self.stream_errors
        then, published_then, dropped_then, errors_then = self._reported
        self._reported = (now, published, dropped, errors)
        period = now - then
        rate = (published - published_then) / period
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: camera"
        status.hardware_id = type(self._camera).__name__
        status.level, status.message = DiagnosticStatus.OK, f"{rate:.1f} Hz"
        if errors > errors_then:
            status.level = DiagnosticStatus.ERROR
            status.message = f"camera errors: {errors - errors_then} in the last {period:.1f} s: {self._last_error}"
        elif dropped > dropped_then:
            status.level = DiagnosticStatus.WARN
            status.message = f"frames dropped: {dropped - dropped_then} in the last {period:.1f} s"
            self.get_logger().warning(f"{status.message} ({dropped} of {counts.received + dropped} since start)")
        elif published == published_then:
            status.level, status.message = DiagnosticStatus.WARN, f"no frames in the last {period:.1f} s"
        status.values = [
            KeyValue(key="frames", value=str(published)),
            KeyValue(key="dropped", value=str(dropped) if counts is not None else "unknown"),
            KeyValue(key="errors", value=str(errors)),
            KeyValue(key="rate", value=f"{rate:.2f}"),
            KeyValue(key="stamp clock", value=self.stamp_clock),
        ]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diagnostics_pub.publish(array)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self._camera is not None:
            self._camera.disconnect()


def start_camera() -> CameraNode:
    """The camera node streaming from the source that its parameters name."""
    node = CameraNode()
    node.start(node.camera_from_parameters())
    return node


def main(args=None):
    spin_node(start_camera, "camera", args, fatal=(ValueError, CameraError), on_exit=CameraNode.stop)


if __name__ == "__main__":
    main()
