"""rosbag2 snapshot mode beside the episode bags: a new output folder for every recording run,
outside the episodes folder, and bags without a wmpo label never break the episode listing."""

import logging
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from test_episode_bags import write_episode

from wmpo_episodes.episodes import list_episodes


def output_of(command: list[str]) -> Path:
    return Path(command[command.index("--output") + 1])


def test_every_snapshot_run_gets_a_new_output_folder(tmp_path):
    from wmpo_episodes.rosbag2_snapshot import snapshot_record_command

    first = output_of(snapshot_record_command(str(tmp_path / "snapshots"), 50_000_000))
    second = output_of(snapshot_record_command(str(tmp_path / "snapshots"), 50_000_000))
    assert first != second, "rosbag2 refuses an output folder that exists: each run needs its own"
    assert first.parent == second.parent == tmp_path / "snapshots"
    assert not first.exists() and not second.exists()


def test_the_default_snapshot_folder_is_outside_the_episodes_folder():
    from wmpo_episodes.recorder_node import PARAMETERS
    from wmpo_episodes.rosbag2_snapshot import SNAPSHOT_DIR

    episodes = Path(PARAMETERS["output_dir"].default).resolve()
    assert not Path(SNAPSHOT_DIR).resolve().is_relative_to(episodes), SNAPSHOT_DIR


def write_unlabelled_bag(path: Path) -> None:
    """A bag as ``ros2 bag record`` writes it: valid metadata.yaml, no wmpo label."""
    store = get_typestore(Stores.ROS2_JAZZY)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/instruction", "std_msgs/msg/String", typestore=store)
        message = store.types["std_msgs/msg/String"](data="lift")
        writer.write(connection, 1, store.serialize_cdr(message, "std_msgs/msg/String"))


def test_an_unlabelled_bag_in_the_episodes_folder_is_skipped_with_a_warning(tmp_path, caplog):
    write_episode(tmp_path, "ep1", "success")
    write_unlabelled_bag(tmp_path / "rosbag2_snapshots")
    write_episode(tmp_path, "ep2", "failure")
    with caplog.at_level(logging.WARNING, logger="wmpo_episodes.episodes"):
        episodes = list_episodes(tmp_path)
    assert [e.path.name for e in episodes] == ["ep1", "ep2"]
    assert "rosbag2_snapshots" in caplog.text and "no episode label" in caplog.text
