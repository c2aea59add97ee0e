"""The simulator's camera: one frame per simulated control step (rendered by the SimWorld)."""

import math
import threading
from collections import deque

from wmpo_robot_io.cameras.base import Camera, Frame, Intrinsics
from wmpo_robot_io.sim.world import SimStep, SimWorld


class SimCamera(Camera):
    def __init__(self, world: SimWorld, queue_size: int = 64):
        self.world = world
        self._frames: deque[Frame] = deque(maxlen=queue_size)
        self._ready = threading.Condition()
        self.world.add_listener(self._on_step)

    def _on_step(self, step: SimStep) -> None:
        with self._ready:
            self._frames.append(Frame(step.image, step.stamp_ns))
            self._ready.notify_all()

    def connect(self) -> None:
        """Nothing to open: frames come from the world's steps."""

    def read(self, timeout: float) -> Frame | None:
        with self._ready:
            if not self._frames:
                self._ready.wait(timeout)
            return self._frames.popleft() if self._frames else None

    def intrinsics(self) -> Intrinsics | None:
        fovy = self.world.camera_fovy_deg()
        if fovy is None:
            return None
        size = self.world.config.image_size
        focal = 0.5 * size / math.tan(math.radians(fovy) / 2)
        return Intrinsics(size, size, focal, focal, size / 2, size / 2)
