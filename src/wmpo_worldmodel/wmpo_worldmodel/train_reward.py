"""Train the video success classifier on labelled episodes, then pick its threshold (by F1, or by
balanced accuracy with ``--threshold-criterion balanced_accuracy``).

  wmpo train-reward --dataset runs/base/Lift/data runs/base/Lift/eval_data --output runs/reward/lift

Clip labels (WMPO): positive = the clip ending at the success frame of a successful episode;
negative = the last clip of a failed episode; plus one random earlier clip of every episode as a
negative (ending at least one clip length before the success frame). Episodes are split by index:
every ``val_every``-th labelled episode is held out; the threshold maximises the criterion (F1 of
"the episode succeeded", or balanced accuracy) over the held-out episodes, judged by a sliding
window as at imagination time.
"""

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from wmpo_common.atomic_json import write_json
from wmpo_common.configs import continued_config
from wmpo_episodes.dataset import EpisodeDataset, EpisodeRecord
from wmpo_worldmodel.configs import RewardConfig, check_threshold_criterion
from wmpo_worldmodel.reward_model import VideoRewardModel


@dataclass
class Clip:
    source: int  # which video collection (dataset) the episode is in
    episode: int
    end: int  # index of the clip's last frame
    label: int  # 1 = success


def episode_clips(
    record: EpisodeRecord, source: int, episode: int, num_frames: int, rng, negative_stride: int = 0
) -> list[Clip]:
    """The labelled clips of one success or failure episode (none for an incomplete one).
    Negatives besides a failure's last clip: one random earlier clip (``negative_stride`` 0, WMPO's),
    or every ``negative_stride``-th clip back from the latest one, so that every moment of a near
    miss, as the judge's sliding window will see it, is taught as failure."""
    if negative_stride < 0:
        raise ValueError(f"negative_stride is 0 (one random clip) or a positive stride, got {negative_stride}")
    if record.outcome not in ("success", "failure"):
        return []
    last = record.num_steps  # frames 0 .. T
    clips = []
    if record.outcome == "success":
        end = min(record.success_step, last) if record.success_step >= 0 else last
        clips.append(Clip(source, episode, end, 1))
    else:
        end = last
        clips.append(Clip(source, episode, end, 0))
    earliest, latest = num_frames - 1, end - num_frames
    if latest >= earliest and negative_stride > 0:
        clips += [Clip(source, episode, k, 0) for k in range(latest, earliest - 1, -negative_stride)]
    elif latest >= earliest:
        clips.append(Clip(source, episode, int(rng.integers(earliest, latest + 1)), 0))
    return clips


def clip_frames(frames: np.ndarray, end: int, num_frames: int) -> np.ndarray:
    """uint8 (num_frames, H, W, 3) of an episode's frames ending at ``end``; frames before 0 repeat frame 0."""
    return frames[np.maximum(np.arange(end - num_frames + 1, end + 1), 0)]


def fit_clips(
    reward: VideoRewardModel,
    clips: list[Clip],
    episode_frames,
    steps: int,
    batch_size: int,
    learning_rate: float,
    rng,
    writer: SummaryWriter | None = None,
) -> None:
    """Train ``reward`` in place on labelled clips, classes balanced (positives are one clip per
    successful episode); ``episode_frames(clip)`` gives the uint8 (T + 1, H, W, 3) frames of the
    clip's episode (frame 0 is the clip's reference)."""
    positives = sum(c.label for c in clips)
    if positives == 0 or positives == len(clips):
        raise ValueError(f"need both success and failure clips to train; got {positives} of {len(clips)} positive")
    model = reward.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05)
    weight = torch.tensor([1.0, (len(clips) - positives) / positives], device=reward.device)
    for step in tqdm(range(1, steps + 1), desc="reward model", unit="step"):
        batch = [clips[i] for i in rng.integers(0, len(clips), batch_size)]
        videos = []  # each the episode's first frame, then the clip's; sizes may differ
        for clip in batch:
            frames = episode_frames(clip)
            videos.append(np.concatenate([frames[:1], clip_frames(frames, clip.end, reward.num_frames)]))
        if rng.random() < 0.5:  # brightness jitter (flips would change what the scene means)
            shift = int(rng.integers(-20, 21))
            videos = [np.clip(v.astype(np.int16) + shift, 0, 255).astype(np.uint8) for v in videos]
        labels = torch.tensor([c.label for c in batch], device=reward.device)
        logits = reward.logits([v[1:] for v in videos], [v[0] for v in videos])
        loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if writer is not None and step % 20 == 0:
            writer.add_scalar("reward/loss", loss.item(), step)
            writer.add_scalar("reward/clip_accuracy", (logits.argmax(-1) == labels).float().mean().item(), step)
    model.eval()


def sweep_threshold(scores: np.ndarray, labels: np.ndarray, criterion: str) -> dict:
    """The threshold on per-episode max scores that maximises ``criterion`` (ties: the middle one):
    ``f1`` of "succeeded" (WMPO's) or ``balanced_accuracy`` (the mean of the success and the failure
    recall). F1 ignores the failures judged right, so where successes are the majority its best
    threshold calls most episodes successes; balanced accuracy weighs a near miss called a success
    as much as a success missed, whatever the success rate."""
    check_threshold_criterion(criterion)
    candidates = np.unique(np.concatenate([np.linspace(0.05, 0.95, 19), scores]))
    successes, failures = max(1, int(np.sum(labels == 1))), max(1, int(np.sum(labels != 1)))
    rows = []
    for threshold in candidates:
        predicted = scores >= threshold
        tp = int(np.sum(predicted & (labels == 1)))
        fp = int(np.sum(predicted & (labels == 0)))
        fn = int(np.sum(~predicted & (labels == 1)))
        tn = int(np.sum(~predicted & (labels != 1)))
        row = {
            "threshold": float(threshold),
            "f1": 2 * tp / max(1, 2 * tp + fp + fn),
            "accuracy": float(np.mean(predicted == (labels == 1))),
            "balanced_accuracy": (tp / successes + tn / failures) / 2,
        }
        rows.append(row)
    best = max(row[criterion] for row in rows)
    ties = [row for row in rows if row[criterion] == best]
    return {**ties[len(ties) // 2], "criterion": criterion, "episodes": len(labels)}


def train(config: RewardConfig) -> Path:
    # -- the checkpoint to continue fixes the clips' size, before anything is written -------------
    initial = None
    if config.init_checkpoint:
        initial = VideoRewardModel.from_pretrained(config.init_checkpoint, config.device)
        architecture = {
            "backbone": initial.backbone,
            "image_size": initial.model.config.image_size,
            "num_frames": initial.num_frames,
        }
        config = continued_config(config, architecture, config.init_checkpoint, "reward model")

    # -- set-up ----------------------------------------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    datasets = [EpisodeDataset(Path(p)) for p in config.datasets]
    labelled = [
        (d, e)
        for d, data in enumerate(datasets)
        for e, r in enumerate(data.records)
        if r.outcome in ("success", "failure")
    ]
    held_out = labelled[config.val_every - 1 :: config.val_every] if config.val_every > 0 else []
    training = [pair for pair in labelled if pair not in held_out]
    clips = [
        c
        for d, e in training
        for c in episode_clips(datasets[d].records[e], d, e, config.num_frames, rng, config.negative_stride)
    ]
    positives = sum(c.label for c in clips)
    print(f"{len(training)} training episodes -> {len(clips)} clips ({positives} positive); {len(held_out)} held out")

    # -- model and training ----------------------------------------------------------------------
    if initial is not None:
        reward = initial
    else:
        reward = VideoRewardModel.fresh(config.backbone, config.image_size, config.num_frames)
        reward.model.to(config.device)
    writer = SummaryWriter(str(output / "tb"))
    started = time.monotonic()

    def episode_frames(clip: Clip) -> np.ndarray:
        return datasets[clip.source].episode(clip.episode)["frames"]

    fit_clips(reward, clips, episode_frames, config.steps, config.batch_size, config.learning_rate, rng, writer)

    # -- threshold: swept on held-out episodes, judged like imagined ones ---------------------------
    sweep_on = held_out or training
    scores, labels = [], []
    for d, e in tqdm(sweep_on, desc="threshold sweep", unit="episode"):
        scores.append(float(reward.judge(datasets[d].episode(e)["frames"]).scores.max()))
        labels.append(int(datasets[d].records[e].outcome == "success"))
    result = sweep_threshold(np.array(scores), np.array(labels), config.threshold_criterion)
    result["swept_on"] = "held-out episodes" if held_out else "training episodes (nothing held out)"
    reward.threshold = result["threshold"]
    path = reward.save_pretrained(output / "reward_model")
    report = {**result, "config": asdict(config), "train_minutes": round((time.monotonic() - started) / 60, 1)}
    write_json(output / "reward_report.json", report)
    writer.add_scalar("reward/threshold", result["threshold"], config.steps)
    writer.add_scalar("reward/heldout_f1", result["f1"], config.steps)
    writer.close()
    t, f1, accuracy = result["threshold"], result["f1"], result["accuracy"]
    print(f"threshold {t:.3f}: F1 {f1:.3f}, accuracy {accuracy:.3f} ({result['swept_on']})")
    return path
