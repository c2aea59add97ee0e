"""Training windows for the world model, cut from converted episode datasets.

A window starting at step k of an episode with T steps (k + F <= T):
  context  frames k-Nc+1 .. k   (indices below 0 repeat frame 0, as a rollout repeats its start frame)
  target   frames k+1 .. k+F    (frame j is the observation after action j-1)
  actions  k .. k+F-1           (executed actions, controller units)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wmpo_episodes.dataset import EpisodeDataset


@dataclass
class Window:
    dataset: int  # index into WindowSampler.datasets
    episode: int
    start: int  # k


def resize_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (antialiased resize)."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if pixels.shape[-1] != size or pixels.shape[-2] != size:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return pixels


class WindowSampler:
    """Random windows from one or more datasets (e.g. expert demos + the policy's own rollouts)."""

    def __init__(self, paths: list[str | Path], context_frames: int, frames_per_pass: int, image_size: int):
        self.datasets = [EpisodeDataset(Path(p)) for p in paths]
        self.context_frames, self.frames_per_pass, self.image_size = context_frames, frames_per_pass, image_size
        self.windows = [
            Window(d, e, k)
            for d, data in enumerate(self.datasets)
            for e, record in enumerate(data.records)
            for k in range(record.num_steps - frames_per_pass + 1)
        ]
        if not self.windows:
            raise ValueError(f"no episode in {paths} has {frames_per_pass} steps or more")

    def all_actions(self) -> np.ndarray:
        return np.concatenate([data.actions for data in self.datasets])

    def window(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 context (Nc, H, W, 3), uint8 target (F, H, W, 3), actions (F, 7)."""
        episode = self.datasets[window.dataset].episode(window.episode)
        k, nc, f = window.start, self.context_frames, self.frames_per_pass
        context = episode["frames"][np.maximum(np.arange(k - nc + 1, k + 1), 0)]
        return context, episode["frames"][k + 1 : k + 1 + f], episode["actions"][k : k + f]

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """context (B, Nc, 3, S, S), target (B, F, 3, S, S) in [-1, 1], actions (B, F, 7) controller units."""
        contexts, targets, actions = zip(
            *(self.window(self.windows[i]) for i in rng.integers(0, len(self.windows), size)), strict=True
        )
        nc, f, s = self.context_frames, self.frames_per_pass, self.image_size
        context = resize_frames(np.concatenate(contexts), s).view(size, nc, 3, s, s)
        target = resize_frames(np.concatenate(targets), s).view(size, f, 3, s, s)
        return context, target, np.stack(actions)
