"""An Intel RealSense colour stream through pyrealsense2 (librealsense)."""

import time
from dataclasses import dataclass

import numpy as np

from wmpo_robot_io.cameras.base import Camera, CameraError, Frame, Intrinsics


@dataclass(frozen=True)
class RealSenseConfig:
    width: int = 640
    height: int = 480
    fps: int = 30
    serial: str = ""  # "" = the only connected device


class RealSenseCamera(Camera):
    def __init__(self, config: RealSenseConfig):
        self.config = config
        self._pipeline = None
        self._intrinsics: Intrinsics | None = None

    def connect(self) -> None:
        try:
            import pyrealsense2 as rs
        except ImportError as error:  # libusb missing, or not installed
            raise CameraError(f"pyrealsense2 cannot be imported ({error}); run scripts/setup_env.sh") from error
        devices = rs.context().query_devices()
        serials = [device.get_info(rs.camera_info.serial_number) for device in devices]
        if not serials:
            raise CameraError("no RealSense device connected (pyrealsense2 found none); check the USB 3 cable")
        if self.config.serial and self.config.serial not in serials:
            raise CameraError(f"RealSense {self.config.serial!r} not found; connected: {', '.join(serials)}")
        rs_config = rs.config()
        if self.config.serial:
            rs_config.enable_device(self.config.serial)
        c = self.config
        rs_config.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        self._pipeline = rs.pipeline()
        try:
            profile = self._pipeline.start(rs_config)
        except RuntimeError as error:
            raise CameraError(f"RealSense failed to start {c.width}x{c.height}@{c.fps}: {error}") from error
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self._intrinsics = Intrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, tuple(intr.coeffs))

    def read(self, timeout: float) -> Frame | None:
        try:
            frames = self._pipeline.wait_for_frames(int(timeout * 1000))
        except RuntimeError:  # librealsense raises on timeout
            return None
        color = frames.get_color_frame()
        if not color:
            return None
        return Frame(np.asanyarray(color.get_data()).copy(), time.time_ns())

    def intrinsics(self) -> Intrinsics | None:
        return self._intrinsics

    def disconnect(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
