"""Writes one episode bag (rosbag2 via rosbags) crash-safely.

Contract:
- The bag is written in ``<output_dir>/.incoming/<episode_id>/`` and moved to
  ``<output_dir>/<episode_id>/`` by one atomic rename once closed and labelled: a bag in the final
  place is always complete; bags already there are never touched.
- ``flush`` (called periodically by the recorder) pushes buffered messages to the OS, so a process
  killed with SIGKILL loses at most the last flush period; ``recover_incoming`` turns what it left
  into a readable bag labelled ``incomplete``.
- Messages are raw CDR bytes (as received by a raw rclpy subscription); timestamps in ns.
"""

import json
import os
import shutil
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from wmpo_episodes.layout import (
    CUSTOM_OUTCOME_KEY,
    CUSTOM_SUMMARY_KEY,
    INCOMING_DIR,
    RECORDED_TOPICS,
    START_INFO_FILE,
    STORAGE_PLUGINS,
    SUMMARY_TOPIC,
    SUMMARY_TYPE,
)
from wmpo_episodes.typestore import episode_typestore

BAG_ERRORS = (WriterError, OSError)  # what writing a bag can raise: rosbags' refusals, the disk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def serialize_summary(summary: dict) -> bytes:
    """CDR bytes of a wmpo_interfaces/msg/EpisodeSummary from its dict form (times in ns)."""
    store = episode_typestore()
    Time = store.types["builtin_interfaces/msg/Time"]
    fields = dict(summary)
    for key in ("start_time", "end_time"):
        sec, nanosec = divmod(int(fields.get(key, 0)), 1_000_000_000)
        fields[key] = Time(sec=sec, nanosec=nanosec)
    cls = store.types[SUMMARY_TYPE]
    msg = cls(
        **{name: fields[name] for name in cls.__dataclass_fields__ if not name.isupper() and not name.startswith("__")}
    )
    return bytes(store.serialize_cdr(msg, SUMMARY_TYPE))


class EpisodeBagWriter:
    def __init__(self, output_dir: Path, episode_id: str, start_summary: dict, storage: str = "mcap"):
        if storage not in STORAGE_PLUGINS:
            raise ValueError(f"storage must be one of {STORAGE_PLUGINS}, got {storage!r}")
        if not episode_id or "/" in episode_id or episode_id.startswith("."):
            raise ValueError(f"invalid episode id {episode_id!r}")
        self.output_dir = Path(output_dir)
        self.final_path = self.output_dir / episode_id
        if self.final_path.exists():
            raise FileExistsError(f"episode {self.final_path} exists already; not overwriting")
        self.staging_path = self.output_dir / INCOMING_DIR / episode_id
        self.staging_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = episode_typestore()
        self.writer = Writer(
            self.staging_path,
            version=9,
            storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3,
        )
        self.writer.open()
        write_json_atomic(self.staging_path / START_INFO_FILE, start_summary)
        self.connections = {
            topic: self.writer.add_connection(topic, msgtype, typestore=self.store)
            for topic, msgtype in {**RECORDED_TOPICS, SUMMARY_TOPIC: SUMMARY_TYPE}.items()
        }
        self.message_count = 0
        self.last_timestamp = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        self.writer.write(self.connections[topic], timestamp_ns, data)
        self.message_count += 1
        self.last_timestamp = max(self.last_timestamp, timestamp_ns)

    def flush(self) -> None:
        """Hand everything written so far to the OS (survives the process being killed)."""
        storage = self.writer.storage
        if hasattr(storage, "close_chunk"):  # mcap: close the pending in-memory chunk
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
        else:  # sqlite3
            storage.conn.commit()

    def close(self, summary: dict, timestamp_ns: int, keep: bool = True) -> Path | None:
        """Label and close the bag; move it to its final place, or delete it if not ``keep``."""
        self.write(SUMMARY_TOPIC, max(timestamp_ns, self.last_timestamp), serialize_summary(summary))
        self.writer.set_custom_data(CUSTOM_OUTCOME_KEY, str(summary.get("outcome", "")))
        self.writer.set_custom_data(CUSTOM_SUMMARY_KEY, json.dumps(summary, sort_keys=True))
        self.writer.close()
        if not keep:
            shutil.rmtree(self.staging_path)
            return None
        (self.staging_path / START_INFO_FILE).unlink()
        for path in self.staging_path.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(self.staging_path, self.final_path)
        _fsync_dir(self.output_dir)
        return self.final_path
