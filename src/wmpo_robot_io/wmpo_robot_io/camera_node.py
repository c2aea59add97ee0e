"""Camera node: publishes ~/image_raw (rgb8) and ~/camera_info from a camera backend, and its
frame rate and dropped frames on /diagnostics every ``diagnostics_period``.

Sources: ``realsense`` (pyrealsense2) and ``bag`` (replay of a recorded bag) in this executable;
``sim`` (the simulator's camera) inside the sim process, which owns the simulator.
"""

import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from wmpo_robot_io.cameras.bag_replay import BagReplayCamera
from wmpo_robot_io.cameras.base import Camera, CameraError, Intrinsics
from wmpo_robot_io.cameras.realsense import RealSenseCamera, RealSenseConfig
from wmpo_robot_io.images import to_image_msg

PARAMETERS = {
    "source": ("realsense", "where frames come from: realsense | bag (sim: only inside sim_node)"),
    "frame_id": ("camera_color_optical_frame", "frame_id of the images (REP-103 optical frame)"),
    "width": (640, "realsense: image width [px]"),
    "height": (480, "realsense: image height [px]"),
    "fps": (30, "realsense: frame rate [Hz]"),
    "serial": ("", "realsense: device serial number ('' = the only device)"),
    "auto_exposure": (True, "realsense: colour auto exposure (false: the fixed exposure and gain below)"),
    "exposure": (156, "realsense: manual exposure, colour sensor units (D400 RGB: 100 us, 156 = 15.6 ms)"),
    "gain": (64, "realsense: manual gain, colour sensor units (D400 RGB: 0..128)"),
    "bag_path": ("", "bag: episode bag folder to replay"),
    "bag_topic": ("/camera/image_raw", "bag: image topic to replay"),
    "rate": (1.0, "bag: replay speed factor"),
    "loop": (False, "bag: start again at the end"),
    "diagnostics_period": (1.0, "period of the /diagnostics status (frames, dropped frames, rate) [s]"),
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
    """Publishes every frame of its camera. Call ``start(camera)`` once the backend exists."""

    def __init__(self, name: str = "camera", **kwargs):
        super().__init__(name, **kwargs)
        for key, (default, doc) in PARAMETERS.items():
            self.declare_parameter(key, default, ParameterDescriptor(description=doc))
        self.image_pub = self.create_publisher(Image, "~/image_raw", 10)
        self.info_pub = self.create_publisher(CameraInfo, "~/camera_info", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.frames_published = 0
        self.stamp_clock = ""  # Frame.clock of the latest frame
        self._reported = (0.0, 0, 0)  # monotonic time [s], frames published, frames dropped at the last report
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
        self._reported = (time.monotonic(), 0, 0)
        self.create_timer(self.param("diagnostics_period"), self.report)
        self._thread.start()
        self.get_logger().info(f"streaming from {type(camera).__name__}")

    def _stream(self) -> None:
        frame_id = self.param("frame_id")
        while not self._stop.is_set():
            frame = self._camera.read(timeout=0.2)
            if frame is None:
                continue
            stamp = Time(nanoseconds=frame.stamp_ns).to_msg()
            image = to_image_msg(frame.image, stamp, frame_id)
            intrinsics = self._camera.intrinsics()
            self.image_pub.publish(image)
            if intrinsics is not None:
                self.info_pub.publish(camera_info_msg(intrinsics, image.header))
            self.stamp_clock = frame.clock
            self.frames_published += 1

    def report(self) -> None:
        """Publish the camera's /diagnostics status: WARN (and a WARN log) when frames were dropped
        since the last report, WARN when none came."""
        now, published, counts = time.monotonic(), self.frames_published, self._camera.frame_counts()
        dropped = counts.dropped if counts is not None else 0
        then, published_then, dropped_then = self._reported
        self._reported = (now, published, dropped)
        period = now - then
        rate = (published - published_then) / period
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: camera"
        status.hardware_id = type(self._camera).__name__
        status.level, status.message = DiagnosticStatus.OK, f"{rate:.1f} Hz"
        if dropped > dropped_then:
            status.level = DiagnosticStatus.WARN
            status.message = f"frames dropped: {dropped - dropped_then} in the last {period:.1f} s"
            self.get_logger().warning(f"{status.message} ({dropped} of {counts.received + dropped} since start)")
        elif published == published_then:
            status.level, status.message = DiagnosticStatus.WARN, f"no frames in the last {period:.1f} s"
        status.values = [
            KeyValue(key="frames", value=str(published)),
            KeyValue(key="dropped", value=str(dropped) if counts is not None else "unknown"),
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


def main(args=None):
    rclpy.init(args=args)
    node = CameraNode()
    try:
        node.start(node.camera_from_parameters())
        rclpy.spin(node)
    except CameraError as error:
        node.get_logger().fatal(str(error))
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
