"""The camera backend contract."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    """The camera cannot be opened or read; the text says why and what to check."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    stamp_ns: int  # capture time, ns since the Unix epoch
    frame_number: int | None = None  # the device's frame counter, where it has one
    clock: str = "host"  # what stamp_ns measures: "host" (host clock at read) or the backend's own clock


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels. ``distortion_model`` and ``distortion`` as in sensor_msgs/CameraInfo
    ("plumb_bob": k1, k2, t1, t2, k3; "equidistant": k1..k4); no distortion unless given."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    distortion_model: str = "plumb_bob"


@dataclass(frozen=True)
class FrameCounts:
    """Counted since ``connect``: frames ``read`` returned, and frames the device numbered that never
    reached ``read`` (gaps in the frame numbers: lost on USB, in the driver, or in a full queue)."""

    received: int = 0
    dropped: int = 0


class Camera(ABC):
    """A colour camera. ``read`` blocks until the next frame or the timeout (then returns None)."""

    @abstractmethod
    def connect(self) -> None:
        """Open the device; raise CameraError with a clear reason if it cannot."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """Return the next frame, or None if none came within ``timeout`` seconds."""

    @abstractmethod
    def intrinsics(self) -> Intrinsics | None:
        """Intrinsics of the frames ``read`` returns (None until known)."""

    def frame_counts(self) -> FrameCounts | None:
        """Frames received and dropped so far; None where the backend cannot tell drops."""
        return None

    def disconnect(self) -> None:
        """Release the device."""
