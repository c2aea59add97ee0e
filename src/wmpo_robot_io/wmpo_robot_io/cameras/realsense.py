"""An Intel RealSense colour stream through pyrealsense2 (librealsense).

The colour sensor is opened directly (sensor API, as realsense-ros does) rather than through
``rs.pipeline``: the same code then drives a physical camera and librealsense's own
``rs.software_device``, which the tests use as the device.

Header stamps (ns since the Unix epoch) come from the frame's librealsense timestamp, by its domain:

* ``global_time``: the device's hardware timestamp mapped onto the host's system clock (librealsense
  tracks offset and drift). Preferred; switched on with ``rs.option.global_time_enabled``.
* ``system_time``: the host's system clock when the frame reached the host (the device gave no
  hardware timestamp, e.g. without frame metadata): includes the USB transfer delay.
* ``hardware_clock``: the device's own clock, counted from power-up, not from the epoch: unusable as
  a ROS stamp, so the host clock when ``read`` returns the frame is used instead.

``Frame.clock`` says which: "global_time", "system_time" or "host". Device stamps are rounded to the
microsecond (librealsense gives ms as a double, with us resolution).
"""

import time
from dataclasses import dataclass

import numpy as np

from wmpo_robot_io.cameras.base import Camera, CameraError, Frame, FrameCounts, Intrinsics

QUEUE_FRAMES = 2  # frames librealsense holds for ``read``; older ones are dropped (and counted)


@dataclass(frozen=True)
class RealSenseConfig:
    """The colour stream (rgb8) and its exposure. ``exposure`` and ``gain`` are in the colour sensor's
    own units (D415/D435/D455 RGB camera: exposure in 100 us, 1..10000; gain 0..128) and apply only
    with ``auto_exposure`` off; each is checked against the sensor's range when connecting."""

    width: int = 640  # px
    height: int = 480  # px
    fps: int = 30  # Hz
    serial: str = ""  # "" = the only connected device
    auto_exposure: bool = True
    exposure: int = 156  # sensor units (D400 RGB: 156 = 15.6 ms)
    gain: int = 64  # sensor units


def import_pyrealsense2():
    try:
        import pyrealsense2 as rs
    except ImportError as error:  # libusb missing, or not installed
        raise CameraError(f"pyrealsense2 cannot be imported ({error}); run scripts/setup_env.sh") from error
    return rs


def intrinsics_from_realsense(rs, intr) -> Intrinsics:
    """CameraInfo intrinsics from an ``rs.intrinsics``.

    RealSense colour streams report ``brown_conrady`` or ``inverse_brown_conrady`` with coefficients
    [k1, k2, p1, p2, k3], the order of ROS "plumb_bob" [k1, k2, t1, t2, k3]; both are published as
    plumb_bob, as realsense-ros does (D415/D435 colour coefficients are zero; whether the D455's
    "inverse" label is right is unsettled upstream, librealsense #9551). ``none`` is plumb_bob with
    zeros, ``kannala_brandt4`` is "equidistant" [k1..k4]; other models are refused.
    """
    if intr.model == rs.distortion.none:
        model, coeffs = "plumb_bob", (0.0,) * 5
    elif intr.model in (rs.distortion.brown_conrady, rs.distortion.inverse_brown_conrady):
        model, coeffs = "plumb_bob", tuple(intr.coeffs[:5])
    elif intr.model == rs.distortion.kannala_brandt4:
        model, coeffs = "equidistant", tuple(intr.coeffs[:4])
    else:
        raise CameraError(f"RealSense distortion model {intr.model.name} has no sensor_msgs/CameraInfo equivalent")
    return Intrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, coeffs, model)


class RealSenseCamera(Camera):
    """``device``: a pyrealsense2 device to use instead of the connected one named by ``config.serial``
    (the tests pass an ``rs.software_device``)."""

    def __init__(self, config: RealSenseConfig, device=None):
        self.config = config
        self._device = device
        self._rs = None
        self._sensor = None
        self._queue = None
        self._intrinsics: Intrinsics | None = None
        self._last_number: int | None = None
        self._received = 0
        self._dropped = 0

    def connect(self) -> None:
        rs = self._rs = import_pyrealsense2()
        device = self._device if self._device is not None else self._find_device(rs)
        sensor, profile = self._colour_stream(rs, device)
        self._apply_options(rs, sensor)
        self._intrinsics = intrinsics_from_realsense(rs, profile.get_intrinsics())
        self._queue = rs.frame_queue(QUEUE_FRAMES)
        self._last_number, self._received, self._dropped = None, 0, 0
        c = self.config
        try:
            sensor.open(profile)
        except RuntimeError as error:
            raise CameraError(f"RealSense cannot open {c.width}x{c.height}@{c.fps}: {error}") from error
        try:
            sensor.start(self._queue)
        except RuntimeError as error:
            sensor.close()
            raise CameraError(f"RealSense failed to start {c.width}x{c.height}@{c.fps}: {error}") from error
        self._sensor = sensor

    def _find_device(self, rs):
        devices = list(rs.context().query_devices())
        serials = [device.get_info(rs.camera_info.serial_number) for device in devices]
        if not serials:
            raise CameraError("no RealSense device connected (pyrealsense2 found none); check the USB 3 cable")
        if not self.config.serial:
            if len(serials) > 1:
                raise CameraError(f"{len(serials)} RealSense devices connected ({', '.join(serials)}); set serial")
            return devices[0]
        if self.config.serial not in serials:
            raise CameraError(f"RealSense {self.config.serial!r} not found; connected: {', '.join(serials)}")
        return devices[serials.index(self.config.serial)]

    def _colour_stream(self, rs, device):
        """The sensor and rgb8 colour profile matching the configured size and rate."""
        c = self.config
        offered = set()
        for sensor in device.query_sensors():
            for profile in sensor.get_stream_profiles():
                if profile.stream_type() != rs.stream.color or profile.format() != rs.format.rgb8:
                    continue
                video = profile.as_video_stream_profile()
                if (video.width(), video.height(), video.fps()) == (c.width, c.height, c.fps):
                    return sensor, video
                offered.add(f"{video.width()}x{video.height()}@{video.fps()}")
        raise CameraError(
            f"RealSense has no rgb8 colour stream {c.width}x{c.height}@{c.fps}; "
            f"it offers: {', '.join(sorted(offered)) or 'none'}"
        )

    def _apply_options(self, rs, sensor) -> None:
        if sensor.supports(rs.option.global_time_enabled):
            set_option(sensor, rs.option.global_time_enabled, 1, "global_time_enabled")
        if self.config.auto_exposure:
            if sensor.supports(rs.option.enable_auto_exposure):
                set_option(sensor, rs.option.enable_auto_exposure, 1, "auto_exposure")
            return
        set_option(sensor, rs.option.enable_auto_exposure, 0, "auto_exposure")
        set_option(sensor, rs.option.exposure, self.config.exposure, "exposure")
        set_option(sensor, rs.option.gain, self.config.gain, "gain")

    def read(self, timeout: float) -> Frame | None:
        ok, frame = self._queue.try_wait_for_frame(int(timeout * 1000))
        if not ok:
            return None
        number = frame.get_frame_number()
        self._count(number)
        stamp_ns, clock = self._stamp(frame)
        image = np.asanyarray(frame.as_video_frame().get_data()).copy()
        return Frame(image, stamp_ns, number, clock)

    def _stamp(self, frame) -> tuple[int, str]:
        domain = frame.get_frame_timestamp_domain()
        if domain in (self._rs.timestamp_domain.global_time, self._rs.timestamp_domain.system_time):
            return round(frame.get_timestamp() * 1000) * 1000, domain.name  # ms -> us -> ns, epoch-based
        return time.time_ns(), "host"

    def _count(self, number: int) -> None:
        if self._last_number is not None and number > self._last_number + 1:
            self._dropped += number - self._last_number - 1
        self._last_number = number  # a smaller number (device restarted) starts counting afresh
        self._received += 1

    def frame_counts(self) -> FrameCounts:
        return FrameCounts(self._received, self._dropped)

    def intrinsics(self) -> Intrinsics | None:
        return self._intrinsics

    def disconnect(self) -> None:
        if self._sensor is not None:
            self._sensor.stop()
            self._sensor.close()
            self._sensor = None


def set_option(sensor, option, value: float, name: str) -> None:
    """Set a sensor option, refusing values outside the sensor's range (CameraError names ``name``)."""
    if not sensor.supports(option):
        raise CameraError(f"the RealSense colour sensor has no {option.name} option (parameter {name})")
    limits = sensor.get_option_range(option)
    if not limits.min <= value <= limits.max:
        raise CameraError(
            f"{name} {value} is outside the RealSense colour sensor's range [{limits.min:g}, {limits.max:g}]"
        )
    try:
        sensor.set_option(option, value)
    except RuntimeError as error:  # e.g. off the option's step
        raise CameraError(f"the RealSense colour sensor refused {name} {value}: {error}") from error
