"""The compact, indexed training dataset: its layout, writer and reader (bags -> dataset: bag_conversion).

Layout of a dataset folder (written to a temporary folder and renamed into place):
  frames.npy      (F, H, W, 3) uint8   observation frames, RGB; memory-mapped when read
  frame_stamps.npy (F,) int64          camera stamps of the frames [ns]
  actions.npy     (A, 7) float32      executed actions (after the safety filter), controller units
  commanded.npy   (A, 7) float32      actions as the policy commanded them (its chunks); behaviour
                                       cloning learns these, which differ from the executed ones
                                       when the episode manager injected noise (DART demonstrations)
  episodes.json                        one record per episode (see EpisodeRecord) + metadata

Per episode with T control steps: T+1 frames (frame k is the observation before action k; the last
is the final observation) and T actions. Frames are aligned to control steps by time: frame k is
the newest camera frame stamped at or before the arm state of step k (exact in simulation; with a
30 Hz camera and a 20 Hz arm the freshest image, never one of a later state, which could show
action k's effect); the final frame, after which no action follows, is the first stamped at or
after the last arm state (the recorder waits for it): a bag without one lacks the final
observation and is refused (one labelled incomplete ends at its last observed state instead). A
chunk on policy_server/action_chunk starts at the step whose arm state is the newest at or before
the chunk's observation stamp; each step takes its commanded action from the latest chunk started
by then (the arm's commanded_action where no chunk was recorded, e.g. teleoperation).
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wmpo_common.atomic_folder import fsync_tree
from wmpo_common.atomic_json import fsync_path, write_json


class DatasetError(ValueError):
    """An episode or dataset that cannot be converted or read; the text says why."""


@dataclass
class EpisodeRecord:
    episode_id: str
    task: str
    instruction: str
    outcome: str  # success | failure | incomplete
    success_step: int  # -1: never
    num_steps: int  # T
    policy_id: str
    frame_start: int  # index of frame 0 in frames.npy
    action_start: int  # index of action 0 in actions.npy
    bag: str
    seed: int = 0
    init_state_id: int = -1  # -1: the scene came from the seed; rollouts of one start state share it


def write_dataset(output: Path, episodes) -> list[EpisodeRecord]:
    """Write (summary, arrays) pairs as one dataset folder, atomically. summary: episode_id, task,
    instruction, outcome, success_step, policy_id (and optionally bag); arrays: frames (T+1, H, W, 3)
    uint8, frame_stamps (T+1,), actions and commanded (T, 7)."""
    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists already; not overwriting")
    records, frames, stamps, actions, commanded = [], [], [], [], []
    n_frames = n_actions = 0
    for s, arrays in episodes:
        if len(arrays["frames"]) != len(arrays["actions"]) + 1:
            raise DatasetError(f"episode {s['episode_id']}: need T+1 frames for T actions")
        records.append(
            EpisodeRecord(
                episode_id=s["episode_id"],
                task=s["task"],
                instruction=s["instruction"],
                outcome=s["outcome"],
                success_step=s["success_step"],
                num_steps=len(arrays["actions"]),
                policy_id=s["policy_id"],
                frame_start=n_frames,
                action_start=n_actions,
                bag=s.get("bag", ""),
                seed=int(s.get("seed", 0)),
                init_state_id=int(s.get("init_state_id", -1)),
            )
        )
        frames.append(np.asarray(arrays["frames"], dtype=np.uint8))
        stamps.append(np.asarray(arrays["frame_stamps"], dtype=np.int64))
        actions.append(np.asarray(arrays["actions"], dtype=np.float32))
        commanded.append(np.asarray(arrays["commanded"], dtype=np.float32))
        n_frames += len(arrays["frames"])
        n_actions += len(arrays["actions"])
    if not records:
        raise DatasetError("no episodes to write")
    shapes = {f.shape[1:] for f in frames}
    if len(shapes) != 1:
        raise DatasetError(f"episodes have different image sizes {shapes}; pass image_size")
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "frames.npy", np.concatenate(frames))
    np.save(tmp / "frame_stamps.npy", np.concatenate(stamps))
    np.save(tmp / "actions.npy", np.concatenate(actions))
    np.save(tmp / "commanded.npy", np.concatenate(commanded))
    meta = {"format": "wmpo-episodes-v1", "episodes": [asdict(r) for r in records]}
    write_json(tmp / "episodes.json", meta, indent=1)
    fsync_tree(tmp)
    os.replace(tmp, output)
    fsync_path(output.parent)
    return records


class EpisodeDataset:
    """A converted dataset, memory-mapped. ``episode(i)`` gives one episode's aligned arrays."""

    def __init__(self, path: Path):
        path = Path(path)
        if (path / "meta" / "info.json").is_file():
            raise DatasetError(f"{path} is a LeRobot dataset: import it first with `wmpo dataset {path} OUTPUT`")
        try:
            meta = json.loads((path / "episodes.json").read_text())
            if meta.get("format") != "wmpo-episodes-v1":
                raise DatasetError(f"{path}: unknown dataset format {meta.get('format')!r}")
            self.records = [EpisodeRecord(**r) for r in meta["episodes"]]
            self.frames = np.load(path / "frames.npy", mmap_mode="r", allow_pickle=False)
            self.frame_stamps = np.load(path / "frame_stamps.npy", allow_pickle=False)
            self.actions = np.load(path / "actions.npy", allow_pickle=False)
            self.commanded = np.load(path / "commanded.npy", allow_pickle=False)
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{path} is not a readable episode dataset: {error}") from error
        expected = sum(r.num_steps for r in self.records)
        if len(self.actions) != expected or len(self.frames) != expected + len(self.records):
            raise DatasetError(f"{path}: arrays do not match the episode index")
        self.path = path

    def __len__(self) -> int:
        return len(self.records)

    def episode(self, index: int) -> dict:
        r = self.records[index]
        frames = slice(r.frame_start, r.frame_start + r.num_steps + 1)
        actions = slice(r.action_start, r.action_start + r.num_steps)
        return {
            "record": r,
            "frames": self.frames[frames],
            "frame_stamps": self.frame_stamps[frames],
            "actions": self.actions[actions],
            "commanded": self.commanded[actions],
        }


def write_subset(parts, output: Path) -> list[EpisodeRecord]:
    """A new dataset folder holding chosen episodes of existing datasets (e.g. a held-out split).
    parts: (EpisodeDataset, episode indices) pairs."""

    def episodes():
        for data, indices in parts:
            for i in indices:
                episode = data.episode(i)
                yield asdict(episode["record"]), episode

    return write_dataset(output, episodes())
