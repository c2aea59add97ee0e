"""Crash recovery: turn what a killed recorder left in ``.incoming/`` into labelled bags.

A staging folder holds ``episode.json`` (the summary known at the start) and a storage file that
may be truncated (no MCAP summary/footer, or uncommitted sqlite3 rows). Every complete message in
it is copied into a new bag labelled ``incomplete``, moved to its final place; then the staging
folder is removed. Bags already in their final place are never touched.
"""

import json
import shutil
import sqlite3
from pathlib import Path

from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader

from wmpo_episodes.bag_writer import EpisodeBagWriter
from wmpo_episodes.layout import INCOMING_DIR, RECORDED_TOPICS, START_INFO_FILE, SUMMARY_TOPIC


def mcap_messages(path: Path) -> list[tuple[str, int, bytes]]:
    """Complete messages of a possibly truncated MCAP file, as (topic, log_time ns, data)."""
    topics: dict[int, str] = {}
    messages = []
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f, skip_magic=False, emit_chunks=False).records:
                if isinstance(record, Channel):
                    topics[record.id] = record.topic
                elif isinstance(record, Message) and record.channel_id in topics:
                    messages.append((topics[record.channel_id], record.log_time, bytes(record.data)))
                elif isinstance(record, Schema):
                    continue
        except Exception:  # noqa: BLE001  truncated record or chunk: everything before it is kept
            pass
    return messages


def sqlite_messages(path: Path) -> list[tuple[str, int, bytes]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        topics = dict(conn.execute("SELECT id, name FROM topics"))
        rows = conn.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp")
        return [(topics[topic_id], stamp, bytes(data)) for topic_id, stamp, data in rows if topic_id in topics]


def recover_episode(staging: Path) -> Path | None:
    """Recover one staging folder; return the final bag path (None if nothing was recoverable)."""
    output_dir = staging.parent.parent
    info_path = staging / START_INFO_FILE
    summary = json.loads(info_path.read_text()) if info_path.is_file() else {}
    episode_id = staging.name
    summary.update(episode_id=episode_id, outcome="incomplete")
    messages: list[tuple[str, int, bytes]] = []
    storage = "mcap"
    for file in staging.iterdir():
        if file.suffix == ".mcap":
            messages = mcap_messages(file)
        elif file.suffix == ".db3":
            storage = "sqlite3"
            messages = sqlite_messages(file)
    if not info_path.is_file() and not messages:
        shutil.rmtree(staging)
        return None
    rescue = staging.with_name(staging.name + ".recovering")
    shutil.rmtree(rescue, ignore_errors=True)
    staging.rename(rescue)
    writer = EpisodeBagWriter(output_dir, episode_id, summary, storage)
    known = set(RECORDED_TOPICS)
    last = 0
    for topic, stamp, data in messages:
        if topic in known and topic != SUMMARY_TOPIC:
            writer.write(topic, stamp, data)
            last = max(last, stamp)
    summary["end_time"] = last
    path = writer.close(summary, last, keep=True)
    shutil.rmtree(rescue)
    return path


def recover_incoming(output_dir: Path) -> list[Path]:
    """Recover every episode left in ``<output_dir>/.incoming``; return the recovered bags."""
    incoming = Path(output_dir) / INCOMING_DIR
    if not incoming.is_dir():
        return []
    for rescue in incoming.glob("*.recovering"):  # an interrupted recovery: start it again
        original = rescue.with_name(rescue.name.removesuffix(".recovering"))
        shutil.rmtree(original, ignore_errors=True)
        rescue.rename(original)
    recovered = []
    for staging in sorted(incoming.iterdir()):
        if staging.is_dir():
            path = recover_episode(staging)
            if path is not None:
                recovered.append(path)
    return recovered
