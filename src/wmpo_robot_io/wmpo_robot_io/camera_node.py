"""Camera node: publishes ~/image_raw (rgb8) and ~/camera_info from a camera backend.

Sources: ``realsense`` (pyrealsense2) and ``bag`` (replay of a recorded bag) in this executable;
``sim`` (the simulator's camera) inside the sim process, which owns the simulator.
"""

import threading

import rclpy
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
    "bag_path": ("", "bag: episode bag folder to replay"),
    "bag_topic": ("/camera/image_raw", "bag: image topic to replay"),
    "rate": (1.0, "bag: replay speed factor"),
    "loop": (False, "bag: start again at the end"),
}


def camera_info_msg(intrinsics: Intrinsics, header) -> CameraInfo:
    info = CameraInfo()
    info.header = header
    info.width, info.height = intrinsics.width, intrinsics.height
    info.distortion_model = "plumb_bob"
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
        self.frames_published = 0
        self._camera: Camera | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, name="camera", daemon=True)

    def param(self, key: str):
        return self.get_parameter(key).value

    def camera_from_parameters(self) -> Camera:
        source = self.param("source")
        if source == "realsense":
            return RealSenseCamera(
                RealSenseConfig(self.param("width"), self.param("height"), self.param("fps"), self.param("serial"))
            )
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
            self.frames_published += 1

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
