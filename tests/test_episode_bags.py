"""Episode bags: written atomically, read back by two independent readers, recovered after SIGKILL."""

import os
import signal

import numpy as np
import pytest
from mcap_ros2.reader import read_ros2_messages
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image

from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.episode_manager_node import keep_episode
from wmpo_episodes.episodes import EpisodeBagError, list_episodes, read_episode_info
from wmpo_episodes.layout import INCOMING_DIR
from wmpo_episodes.recovery import recover_incoming
from wmpo_episodes.summary import summary_to_dict
from wmpo_episodes.typestore import episode_typestore
from wmpo_interfaces.msg import ActionChunk, EpisodeSummary


def summary(episode_id: str, outcome: str = "") -> dict:
    return summary_to_dict(EpisodeSummary(episode_id=episode_id, task="Lift", seed=3, outcome=outcome, success_step=-1))


def image_bytes(value: int) -> bytes:
    msg = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes([value]) * 48)
    return serialize_message(msg)


def write_episode(output, episode_id, outcome, storage="mcap", keep=True):
    writer = EpisodeBagWriter(output, episode_id, summary(episode_id), storage)
    for i in range(5):
        writer.write("/camera/image_raw", 1_000 + i, image_bytes(i))
    chunk = ActionChunk(horizon=2, action_dim=7, actions=[0.5] * 14, policy_id="test/1")
    writer.write("/policy_server/action_chunk", 1_010, serialize_message(chunk))
    return writer.close(summary(episode_id, outcome), 2_000, keep=keep)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_back_with_rosbags_including_custom_types(tmp_path, storage):
    path = write_episode(tmp_path, "ep1", "failure", storage)
    assert path == tmp_path / "ep1" and not (tmp_path / INCOMING_DIR / "ep1").exists()
    with AnyReader([path], default_typestore=episode_typestore()) as reader:
        decoded = {}
        for connection, _, raw in reader.messages():
            decoded.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    assert [m.data[0] for m in decoded["/camera/image_raw"]] == [0, 1, 2, 3, 4]
    assert list(decoded["/policy_server/action_chunk"][0].actions) == [0.5] * 14
    assert decoded["/episode/summary"][0].outcome == "failure"
    assert read_episode_info(path).outcome == "failure"


def test_mcap_bag_reads_back_with_the_independent_mcap_reader(tmp_path):
    path = write_episode(tmp_path, "ep1", "success")
    messages = {}
    for m in read_ros2_messages(str(path / "ep1.mcap")):
        messages.setdefault(m.channel.topic, []).append(m.ros_msg)
    assert len(messages["/camera/image_raw"]) == 5
    assert messages["/policy_server/action_chunk"][0].policy_id == "test/1"  # custom type, schema from the bag
    assert messages["/episode/summary"][0].outcome == "success"


def test_dropped_episode_leaves_nothing(tmp_path):
    assert write_episode(tmp_path, "ep1", "success", keep=False) is None
    assert list_episodes(tmp_path) == []
    assert list((tmp_path / INCOMING_DIR).iterdir()) == []


def test_existing_episode_is_never_overwritten(tmp_path):
    write_episode(tmp_path, "ep1", "success")
    with pytest.raises(FileExistsError):
        EpisodeBagWriter(tmp_path, "ep1", summary("ep1"))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sigkill_mid_episode_keeps_earlier_bags_and_recovers_flushed_messages(tmp_path, storage):
    write_episode(tmp_path, "ep1", "success", storage)
    before = {p.name: p.read_bytes() for p in (tmp_path / "ep1").iterdir()}
    pid = os.fork()
    if pid == 0:  # the "recorder": writes, flushes, writes more, dies without closing
        writer = EpisodeBagWriter(tmp_path, "ep2", summary("ep2"), storage)
        for i in range(3):
            writer.write("/camera/image_raw", 1_000 + i, image_bytes(i))
        writer.flush()
        writer.write("/camera/image_raw", 1_100, image_bytes(9))  # never flushed
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    assert (tmp_path / INCOMING_DIR / "ep2").is_dir()
    assert recover_incoming(tmp_path) == [tmp_path / "ep2"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "ep1").iterdir()} == before
    assert read_episode_info(tmp_path / "ep2").outcome == "incomplete"
    with AnyReader([tmp_path / "ep2"], default_typestore=episode_typestore()) as reader:
        images = [
            reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/camera/image_raw"
        ]
    assert [m.data[0] for m in images] == [0, 1, 2]
    assert [e.outcome for e in list_episodes(tmp_path)] == ["success", "incomplete"]


def test_truncated_mcap_file_is_recovered_up_to_the_damage(tmp_path):
    writer = EpisodeBagWriter(tmp_path, "ep3", summary("ep3"))
    for i in range(4):
        writer.write("/camera/image_raw", 1_000 + i, image_bytes(i))
        writer.flush()  # one chunk per message
    mcap = tmp_path / INCOMING_DIR / "ep3" / "ep3.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) - 40])  # the last chunk is cut
    (path,) = recover_incoming(tmp_path)
    with AnyReader([path], default_typestore=episode_typestore()) as reader:
        count = sum(1 for c, _, _ in reader.messages() if c.topic == "/camera/image_raw")
    assert count == 3


def test_corrupt_metadata_is_a_clear_error(tmp_path):
    path = write_episode(tmp_path, "ep1", "success")
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: {custom_data: {}}")
    with pytest.raises(EpisodeBagError, match="no episode label"):
        read_episode_info(path)
    with pytest.raises(EpisodeBagError, match="no metadata.yaml"):
        read_episode_info(tmp_path / "nothing")


def test_summary_round_trip_through_the_bag(tmp_path):
    writer = EpisodeBagWriter(tmp_path, "ep4", summary("ep4"))
    final = summary("ep4", "success")
    final.update(num_steps=92, success_step=91, start_time=1_700_000_000_123_456_789)
    path = writer.close(final, 5)
    info = read_episode_info(path)
    assert info.summary == final
    with AnyReader([path], default_typestore=episode_typestore()) as reader:
        (msg,) = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert (msg.num_steps, msg.success_step, msg.start_time.nanosec) == (92, 91, 123_456_789)
    np.testing.assert_equal(msg.seed, 3)


@pytest.mark.parametrize(
    ("mode", "outcome", "share", "kept_of_eight"),
    [
        ("all", "success", 0.0, 8),
        ("failures", "failure", 0.0, 8),
        ("failures", "incomplete", 0.0, 8),
        ("failures", "success", 0.0, 0),
        ("failures", "success", 0.25, 2),
        ("failures", "success", 0.5, 4),
        ("failures", "success", 1.0, 8),
    ],
)
def test_record_modes_keep_failures_and_the_configured_share_of_successes(mode, outcome, share, kept_of_eight):
    kept = [keep_episode(mode, outcome, n, share) for n in range(8)]
    assert sum(kept) == kept_of_eight
    if 0 < share < 1:  # spread evenly, not the first ones
        assert kept == [(n + 1) % round(1 / share) == 0 for n in range(8)]


def test_rosbag2_snapshot_recorder_buffers_every_episode_topic():
    from wmpo_episodes.layout import RECORDED_TOPICS, SUMMARY_TOPIC
    from wmpo_episodes.rosbag2_snapshot import snapshot_record_command

    command = snapshot_record_command("episodes/snapshots", 50_000_000)
    assert command[:3] == ["ros2", "bag", "record"]
    assert "--snapshot-mode" in command
    assert command[command.index("--max-cache-size") + 1] == "50000000"
    output = command[command.index("--output") + 1]
    assert output.startswith("episodes/snapshots/")  # a new folder for every run
    assert command[command.index("--topics") + 1 :] == [*RECORDED_TOPICS, SUMMARY_TOPIC]
    with pytest.raises(ValueError, match="max_cache_bytes must be > 0"):
        snapshot_record_command("episodes/snapshots", 0)
