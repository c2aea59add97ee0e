"""Reading episode bags: their labels (from metadata.yaml) and listing a folder of them."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from wmpo_episodes.layout import CUSTOM_SUMMARY_KEY, INCOMING_DIR

logger = logging.getLogger(__name__)


class EpisodeBagError(ValueError):
    """Not a readable episode bag; the text says why."""


class UnlabelledBagError(EpisodeBagError):
    """A rosbag2 bag without a wmpo label (e.g. rosbag2's own snapshots): not an episode."""


@dataclass(frozen=True)
class EpisodeInfo:
    path: Path
    summary: dict  # EpisodeSummary fields; times in ns since the epoch

    @property
    def outcome(self) -> str:
        return self.summary.get("outcome", "")


def read_episode_info(path: Path) -> EpisodeInfo:
    """The label of one episode bag, from its metadata.yaml alone."""
    path = Path(path)
    meta = path / "metadata.yaml"
    if not meta.is_file():
        raise EpisodeBagError(f"{path}: no metadata.yaml (not a closed rosbag2 bag)")
    try:
        info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        label = (info.get("custom_data") or {}).get(CUSTOM_SUMMARY_KEY)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise EpisodeBagError(f"{path}: metadata.yaml is not rosbag2 metadata ({error!r})") from error
    if label is None:
        raise UnlabelledBagError(f"{path}: metadata.yaml has no episode label (custom_data {CUSTOM_SUMMARY_KEY})")
    try:
        summary = json.loads(label)
    except (TypeError, json.JSONDecodeError) as error:
        raise EpisodeBagError(f"{path}: metadata.yaml has no episode label ({error!r})") from error
    return EpisodeInfo(path, summary)


def list_episodes(output_dir: Path) -> list[EpisodeInfo]:
    """Every labelled episode bag directly under ``output_dir``, oldest first; other bags (no wmpo
    label) are skipped with a warning, a damaged label raises EpisodeBagError."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    episodes = []
    for path in sorted(output_dir.iterdir()):
        if path.is_dir() and path.name != INCOMING_DIR and (path / "metadata.yaml").is_file():
            try:
                episodes.append(read_episode_info(path))
            except UnlabelledBagError as error:
                logger.warning(f"skipped, not an episode bag: {error}")
    return sorted(episodes, key=lambda e: e.summary.get("start_time", 0))
