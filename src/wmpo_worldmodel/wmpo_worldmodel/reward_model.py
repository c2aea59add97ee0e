"""The video success classifier (reward model): one of two transformers models, by ``backbone``:
- ``keypoints``: KeypointVideoClassifier, keypoints of a frozen ImageNet-pretrained encoder per
  frame, judged against the episode's first frame (keypoint_video_classifier.py);
- ``videomae``: VideoMAEForVideoClassification, a tiny one trained from scratch, or any local
  VideoMAE folder (e.g. VideoMAE-base) to fine-tune.

A clip is ``num_frames`` consecutive frames, with its episode's first frame as the reference (the
keypoint backbone compares the scene with it; VideoMAE ignores it); class 1 = "the task has just
succeeded". An episode (real or imagined) succeeds when any clip of a sliding window scores >=
``threshold``; its success frame is the last frame of the first such clip. A checkpoint is one folder: config.json +
model.safetensors (save_pretrained) and reward.json (threshold, stride), written atomically.

Frames: uint8 (T, H, W, 3) RGB of any size, resized to the model's image_size and normalised with
its config's image_mean and image_std (VideoMAE: the ImageNet ones, VideoMAEImageProcessor's, so a
real VideoMAE-base folder loads as is).
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
from wmpo_worldmodel.keypoint_video_classifier import KeypointVideoClassifier, KeypointVideoConfig

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
BACKBONES = {  # backbone -> (config.json's model_type, model class)
    "keypoints": (KeypointVideoConfig.model_type, KeypointVideoClassifier),
    "videomae": (VideoMAEConfig.model_type, VideoMAEForVideoClassification),
}


class RewardModelError(ValueError):
    """A reward-model checkpoint or input that cannot be used; the text says why."""


@dataclass
class EpisodeVerdict:
    success: bool
    success_frame: int  # index of the frame at which success is first detected; -1 if none
    scores: np.ndarray  # (W,) success probability of each window, window w ends at frame w + num_frames - 1 (stride 1)


class VideoRewardModel:
    def __init__(self, model: KeypointVideoClassifier | VideoMAEForVideoClassification, threshold: float = 0.5):
        self.model = model
        self.threshold = threshold

    @classmethod
    def fresh(cls, backbone: str, image_size: int, num_frames: int) -> "VideoRewardModel":
        """A new model to train: ``keypoints`` (pretrained encoder from its wheel, the rest random)
        or ``videomae`` (tiny, random)."""
        if backbone == "keypoints":
            config = KeypointVideoConfig(image_size=image_size, num_frames=num_frames, num_labels=2)
            return cls(KeypointVideoClassifier.fresh(config))
        if backbone == "videomae":
            return cls.tiny(image_size=image_size, num_frames=num_frames)
        raise RewardModelError(f"unknown reward-model backbone {backbone!r}; choices: {', '.join(sorted(BACKBONES))}")

    @classmethod
    def tiny(cls, **overrides) -> "VideoRewardModel":
        """A tiny random VideoMAE (TINY_VIDEOMAE with VideoMAEConfig overrides)."""
        config = VideoMAEConfig(**{**TINY_VIDEOMAE, **overrides}, num_labels=2)
        return cls(VideoMAEForVideoClassification(config))

    @property
    def backbone(self) -> str:
        """The name of the model's backbone in BACKBONES."""
        return next(name for name, (_, model_class) in BACKBONES.items() if isinstance(self.model, model_class))

    def refuse_keyframe_starts(self, real_context_fraction: float) -> None:
        """RewardModelError when imagined rollouts may start from real mid-episode keyframes
        (``real_context_fraction`` > 0) and the keypoint backbone judges them: it compares every
        frame with the first frame it is given, which would be the keyframe, not the episode's start."""
        if real_context_fraction > 0 and self.backbone == "keypoints":
            raise RewardModelError(
                f"real_context_fraction {real_context_fraction} (keyframe starts) with a keypoint reward model, "
                "which judges against the episode's first frame: use real_context_fraction 0 or a videomae judge"
            )

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
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            classes = {name: model_class for name, model_class in BACKBONES.values()}
            if model_type not in classes:
                raise RewardModelError(f"model_type {model_type!r} is none of {', '.join(sorted(classes))}")
            model, loading = classes[model_type].from_pretrained(
                path, local_files_only=True, use_safetensors=True, output_loading_info=True
            )
            unfit = {
                k: v for k, v in loading.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v
            }
            if unfit and model_type == KeypointVideoConfig.model_type:  # (a VideoMAE-base folder lacks its head)
                raise RewardModelError(f"its weights do not fit the model: {unfit}")
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
        return self.frame_pixels(clips.reshape(-1, *clips.shape[2:])).unflatten(0, (len(clips), self.num_frames))

    def frame_pixels(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> normalised (N, 3, S, S) on the model's device."""
        config, size = self.model.config, self.model.config.image_size
        pixels = (resize_frames(frames, size) + 1.0) / 2.0
        mean = torch.tensor(getattr(config, "image_mean", IMAGENET_MEAN)).view(1, 3, 1, 1)
        std = torch.tensor(getattr(config, "image_std", IMAGENET_STD)).view(1, 3, 1, 1)
        return ((pixels - mean) / std).to(self.device)

    def logits(self, clips, references) -> torch.Tensor:
        """Logits (B, 2), differentiable, of B uint8 clips (each (num_frames, H, W, 3); sizes may
        differ between clips) and their episodes' first frames (each (H, W, 3))."""
        if len(clips) != len(references):
            raise RewardModelError(f"{len(clips)} clips but {len(references)} reference frames")
        pixels = torch.cat([self.pixels(np.asarray(clip)[None]) for clip in clips])
        if isinstance(self.model, KeypointVideoClassifier):
            reference = torch.cat([self.frame_pixels(np.asarray(frame)[None]) for frame in references])
            return self.model(pixel_values=pixels, reference_pixel_values=reference).logits
        return self.model(pixel_values=pixels).logits

    @torch.no_grad()
    def clip_scores(self, clips: np.ndarray, references: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Success probability (B,) of uint8 clips (B, num_frames, H, W, 3) with their episodes'
        first frames (B, H, W, 3)."""
        self.model.eval()
        scores = []
        for start in range(0, len(clips), batch_size):
            batch = slice(start, start + batch_size)
            scores.append(self.logits(clips[batch], references[batch]).softmax(-1)[:, 1].cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros(0)

    def judge(self, frames: np.ndarray) -> EpisodeVerdict:
        """Slide a window (stride 1) over one episode's uint8 frames (T, H, W, 3)."""
        frames = np.asarray(frames)
        pad = max(0, self.num_frames - len(frames))  # too short: repeat the first frame in front
        frames = np.concatenate([np.repeat(frames[:1], pad, axis=0), frames])
        if isinstance(self.model, KeypointVideoClassifier):
            scores = self.window_scores(frames)
        else:
            windows = np.moveaxis(np.lib.stride_tricks.sliding_window_view(frames, self.num_frames, axis=0), -1, 1)
            scores = self.clip_scores(windows, np.broadcast_to(frames[0], (len(windows), *frames.shape[1:])))
        hits = np.flatnonzero(scores >= self.threshold)
        frame = max(0, int(hits[0]) + self.num_frames - 1 - pad) if len(hits) else -1
        return EpisodeVerdict(bool(len(hits)), frame, scores)

    @torch.no_grad()
    def window_scores(self, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Success probability (W,) of every window (stride 1) of uint8 frames (T >= num_frames, H, W, 3)
        against frame 0, each frame encoded once: what ``clip_scores`` of the windows gives, for the
        keypoint backbone."""
        self.model.eval()
        chunks = range(0, len(frames), batch_size)
        descriptors = torch.cat(
            [self.model.encode_frames(self.frame_pixels(frames[i : i + batch_size])) for i in chunks]
        )
        windows = descriptors.unfold(0, self.num_frames, 1).transpose(1, 2)  # (W, num_frames, D)
        reference = descriptors[:1].expand(len(windows), -1)
        return self.model.classify(windows, reference).softmax(-1)[:, 1].cpu().numpy()
