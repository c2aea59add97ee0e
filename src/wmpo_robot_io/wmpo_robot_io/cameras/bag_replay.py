"""Replays the images of a recorded bag as a camera, at the recorded pace (scaled by ``rate``).
Frames are decoded by the validating decoder; a malformed one is skipped with a warning."""

import time
import warnings
from pathlib import Path

import numpy as np

from wmpo_robot_io.cameras.base import Camera, CameraError, Frame, Intrinsics
from wmpo_robot_io.images import ImageError, from_image_msg


class BagReplayCamera(Camera):
    def __init__(self, bag_path: str, topic: str = "/camera/image_raw", rate: float = 1.0, loop: bool = False):
        if rate <= 0:
            raise CameraError(f"replay rate must be > 0, got {rate}")
        self.bag_path = Path(bag_path)
        self.topic = topic
        self.rate = rate
        self.loop = loop
        self._images: list[tuple[int, np.ndarray]] = []
        self.skipped = 0  # malformed recorded frames left out
        self._index = 0
        self._start_wall = 0.0

    def connect(self) -> None:
        from rosbags.highlevel import AnyReader

        if not (self.bag_path / "metadata.yaml").is_file():
            raise CameraError(f"{self.bag_path} is not a rosbag2 bag (no metadata.yaml)")
        try:
            with AnyReader([self.bag_path]) as reader:
                connections = [c for c in reader.connections if c.topic == self.topic]
                if not connections:
                    topics = sorted({c.topic for c in reader.connections})
                    raise CameraError(f"no topic {self.topic} in {self.bag_path}; topics: {', '.join(topics)}")
                for index, (connection, timestamp, raw) in enumerate(reader.messages(connections=connections)):
                    msg = reader.deserialize(raw, connection.msgtype)
                    try:
                        self._images.append((timestamp, from_image_msg(msg)))
                    except ImageError as error:  # a camera dropping one frame, not the end of the replay
                        self.skipped += 1
                        warnings.warn(f"{self.bag_path}: skipped camera frame {index} ({error})", stacklevel=2)
        except CameraError:
            raise
        except Exception as error:  # rosbags raises several types for corrupt bags
            raise CameraError(f"cannot read {self.bag_path}: {error}") from error
        if not self._images:
            raise CameraError(f"{self.bag_path} has no decodable messages on {self.topic} ({self.skipped} malformed)")
        self._start_wall = time.monotonic()

    def read(self, timeout: float) -> Frame | None:
        if self._index >= len(self._images):
            if not self.loop:
                time.sleep(timeout)
                return None
            self._index = 0
            self._start_wall = time.monotonic()
        first = self._images[0][0]
        stamp, image = self._images[self._index]
        due = self._start_wall + (stamp - first) / 1e9 / self.rate
        wait = due - time.monotonic()
        if wait > timeout:
            time.sleep(timeout)
            return None
        if wait > 0:
            time.sleep(wait)
        self._index += 1
        return Frame(image, time.time_ns())

    def intrinsics(self) -> Intrinsics | None:
        if not self._images:
            return None
        h, w = self._images[0][1].shape[:2]
        return Intrinsics(w, h, float(w), float(w), w / 2, h / 2)
