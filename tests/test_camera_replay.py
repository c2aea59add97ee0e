"""The bag-replay camera plays a recorded episode's frames back, and rejects what is not a bag."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.summary import summary_to_dict
from wmpo_interfaces.msg import EpisodeSummary
from wmpo_robot_io.cameras.bag_replay import BagReplayCamera
from wmpo_robot_io.cameras.base import CameraError
from wmpo_robot_io.images import to_image_msg


@pytest.fixture
def recorded_bag(tmp_path):
    frames = [np.full((8, 8, 3), i * 20, np.uint8) for i in range(4)]
    start = summary_to_dict(EpisodeSummary(episode_id="ep", outcome=""))
    writer = EpisodeBagWriter(tmp_path, "ep", start)
    for i, frame in enumerate(frames):
        writer.write("/camera/image_raw", 1_000_000 * i, serialize_message(to_image_msg(frame, Time(), "cam")))
    return writer.close({**start, "outcome": "success"}, 10_000_000), frames


def test_replay_yields_the_recorded_frames_in_order(recorded_bag):
    path, frames = recorded_bag
    camera = BagReplayCamera(str(path), rate=10.0)
    camera.connect()
    replayed = [camera.read(timeout=1.0) for _ in frames]
    for frame, expected in zip(replayed, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)
    assert camera.read(timeout=0.01) is None  # end of the bag, not looping


def test_replay_rejects_missing_topics_and_non_bags(recorded_bag, tmp_path):
    path, _ = recorded_bag
    with pytest.raises(CameraError, match="no topic /wrist/image_raw"):
        BagReplayCamera(str(path), topic="/wrist/image_raw").connect()
    with pytest.raises(CameraError, match="not a rosbag2 bag"):
        BagReplayCamera(str(tmp_path / "nothing")).connect()
    (path / "ep.mcap").write_bytes(b"garbage")
    with pytest.raises(CameraError, match="cannot read"):
        BagReplayCamera(str(path)).connect()
