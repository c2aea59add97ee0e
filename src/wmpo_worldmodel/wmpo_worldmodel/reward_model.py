"""The video success classifier (reward model): transformers VideoMAEForVideoClassification.

A clip is ``num_frames`` consecutive frames; class 1 = "the task has just succeeded". An episode
(real or imagined) succeeds when any clip of a sliding window scores >= ``threshold``; its
success frame is the last frame of the first such clip. A checkpoint is one folder: config.json +
model.safetensors (save_pretrained) and reward.json (threshold, stride), written atomically.

Frames: uint8 (T, H, W, 3) RGB of any size, resized to the model's image_size and normalised with
the ImageNet mean and std (VideoMAEImageProcessor's), so a real VideoMAE-base folder loads as is.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from wmpo_common.atomic_folder import atomic_folder
from wmpo_common.atomic_json import write_json
from wmpo_worldmodel.data import resize_frames

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REWARD_FILE = "reward.json"
TINY_VIDEOMAE = {
    "image_size": 64,
    "patch_size": 16,
    "num_frames": 8,
    "tubelet_size": 2,
    "hidden_size": 192,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
}


class RewardModelError(ValueError):
    """A reward-model checkpoint or input that cannot be used; the text says why."""


@dataclass
class EpisodeVerdict:
    success: bool
    success_frame: int  # index of the frame at which success is first detected; -1 if none
    scores: np.ndarray  # (W,) success probability of each window, window w ends at frame w + num_frames - 1 (stride 1)


class VideoRewardModel:
    def __init__(self, model: VideoMAEForVideoClassification, threshold: float = 0.5):
        self.model = model
        self.threshold = threshold

    @classmethod
    def tiny(cls, **overrides) -> "VideoRewardModel":
        config = VideoMAEConfig(**{**TINY_VIDEOMAE, **overrides}, num_labels=2)
        return cls(VideoMAEForVideoClassification(config))

    @property
    def num_frames(self) -> int:
        return self.model.config.num_frames

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- checkpoints -------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        with atomic_folder(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            write_json(tmp / REWARD_FILE, {"threshold": self.threshold})
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "VideoRewardModel":
        """A reward checkpoint, or any local VideoMAEForVideoClassification folder with 2 labels
        (threshold 0.5 until swept)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise RewardModelError(f"{path} is not a reward-model checkpoint: config.json is missing")
        try:
            model = VideoMAEForVideoClassification.from_pretrained(path, local_files_only=True, use_safetensors=True)
            threshold = (
                json.loads((path / REWARD_FILE).read_text())["threshold"] if (path / REWARD_FILE).is_file() else 0.5
            )
        except Exception as error:  # noqa: BLE001  corrupt files raise many types (safetensors, json, torch)
            raise RewardModelError(f"cannot load the reward model {path}: {error}") from error
        if model.config.num_labels != 2:
            raise RewardModelError(f"{path}: a reward model has 2 labels, this one has {model.config.num_labels}")
        return cls(model.to(device).eval(), float(threshold))

    # -- inference ---------------------------------------------------------------------------
    def pixels(self, clips: np.ndarray) -> torch.Tensor:
        """uint8 (B, num_frames, H, W, 3) -> normalised (B, num_frames, 3, S, S)."""
        clips = np.asarray(clips)
        if clips.ndim != 5 or clips.shape[1] != self.num_frames or clips.shape[-1] != 3 or clips.dtype != np.uint8:
            raise RewardModelError(
                f"clips must be uint8 (B, {self.num_frames}, H, W, 3), got {clips.shape} {clips.dtype}"
            )
        size = self.model.config.image_size
        pixels = (resize_frames(clips.reshape(-1, *clips.shape[2:]), size) + 1.0) / 2.0
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((pixels - mean) / std).view(len(clips), self.num_frames, 3, size, size).to(self.device)

    @torch.no_grad()
    def clip_scores(self, clips: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Success probability (B,) of each clip."""
        self.model.eval()
        scores = []
        for start in range(0, len(clips), batch_size):
            logits = self.model(pixel_values=self.pixels(clips[start : start + batch_size])).logits
            scores.append(logits.softmax(-1)[:, 1].cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0)

    def judge(self, frames: np.ndarray) -> EpisodeVerdict:
        """Slide a window (stride 1) over one episode's uint8 frames (T, H, W, 3)."""
        frames = np.asarray(frames)
        pad = max(0, self.num_frames - len(frames))  # too short: repeat the first frame in front
        frames = np.concatenate([np.repeat(frames[:1], pad, axis=0), frames])
        windows = np.lib.stride_tricks.sliding_window_view(frames, self.num_frames, axis=0)  # (W, H, W, 3, N)
        scores = self.clip_scores(np.moveaxis(windows, -1, 1))
        hits = np.flatnonzero(scores >= self.threshold)
        frame = max(0, int(hits[0]) + self.num_frames - 1 - pad) if len(hits) else -1
        return EpisodeVerdict(bool(len(hits)), frame, scores)
