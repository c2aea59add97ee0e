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


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (plumb-bob model, no distortion unless given)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


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

    def disconnect(self) -> None:
        """Release the device."""
