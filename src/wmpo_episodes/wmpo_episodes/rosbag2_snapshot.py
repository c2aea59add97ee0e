"""rosbag2's own recorder in snapshot mode, beside the episode recorder (ROS machines only).

``ros2 bag record --snapshot-mode`` keeps the newest ``max_cache_size`` bytes of every episode
topic in memory and writes them to a new file of its bag when its ``~/snapshot`` service
(rosbag2_interfaces/srv/Snapshot) is called. With ``snapshot_service`` set, the episode manager
calls it after every episode that did not succeed, so the lead-up to each failure is also kept
by rosbag2 itself, at full camera rate, whatever the episode's record mode.

rosbag2 and rosbag2_interfaces exist on ROS machines (the robot image), not among the pip wheels:
here the launch argument stays off and the episode manager refuses a ``snapshot_service`` loudly.
"""

import uuid
from datetime import UTC, datetime
from pathlib import Path

from wmpo_episodes.layout import RECORDED_TOPICS, SUMMARY_TOPIC

SNAPSHOT_SERVICE = "/rosbag2_recorder/snapshot"  # the ~/snapshot service of `ros2 bag record`
SNAPSHOT_DIR = "rosbag2_snapshots"  # beside the episodes folder, never in it (its bags carry no wmpo label)


def new_run_folder(snapshot_dir: str) -> Path:
    """A folder in ``snapshot_dir`` for one recording run: rosbag2 refuses an output that exists."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return Path(snapshot_dir) / f"{stamp}_{uuid.uuid4().hex[:6]}"


def snapshot_record_command(snapshot_dir: str, max_cache_bytes: int, storage: str = "mcap") -> list[str]:
    """The ``ros2 bag record`` command line that buffers the episode topics for snapshots.

    snapshot_dir: the run's bag goes in a new folder in it (rosbag2 creates it); each snapshot is a
    new file in that bag. max_cache_bytes: the ring buffer's size; at 30 Hz 640x480 rgb8
    (27.6 MB/s) 500 MB is ~18 s.
    """
    if max_cache_bytes <= 0:
        raise ValueError(f"max_cache_bytes must be > 0, got {max_cache_bytes}")
    topics = [*RECORDED_TOPICS, SUMMARY_TOPIC]
    return [
        "ros2",
        "bag",
        "record",
        "--snapshot-mode",
        "--max-cache-size",
        str(max_cache_bytes),
        "--storage",
        storage,
        "--output",
        str(new_run_folder(snapshot_dir)),
        "--topics",
        *topics,
    ]


def snapshot_service_type():
    """rosbag2_interfaces/srv/Snapshot; ImportError naming the package where rosbag2 is absent."""
    try:
        from rosbag2_interfaces.srv import Snapshot
    except ImportError as error:
        raise ImportError(
            "snapshot_service needs rosbag2_interfaces (ros-jazzy-rosbag2-interfaces, in the robot image); "
            "it is not among the pip wheels: leave snapshot_service empty here"
        ) from error
    return Snapshot
