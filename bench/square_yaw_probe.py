"""Can a Square policy's vision encoder see which way the nut's handle points?

A grasp needs the gripper turned across the handle, and the nut's starting yaw spans a full turn.
This fits a ridge-regression probe from frozen image features to (cos, sin) of the nut's yaw on
the first frames of the episodes in one dataset (the nut has not moved yet) and reports the median
angle error on another dataset's episodes (other scenes). Features: each checkpoint's SigLIP
encoder output (all patch tokens, flattened); as references, raw pixels and an untrained encoder
of the same configuration (seeded random initialisation).
Chance is a median error of 90 degrees (handle direction) and 45 degrees (grasp axis, modulo 180).

  python bench/square_yaw_probe.py --train runs/base/NutAssemblySquare/data --test runs/square_dart/data \
      --checkpoints runs/base/NutAssemblySquare/bc/checkpoints/step_5000 runs/square_128/checkpoints/step_3000
"""

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from rosbags.highlevel import AnyReader

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_episodes.typestore import episode_typestore
from wmpo_policy.backends.scripted_expert import yaw_of
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import VLAPolicy, images_to_pixels

LAMBDAS = (1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def start_yaw(bag: Path) -> float:
    """The square nut's yaw [rad] in the bag's first /sim/task_state."""
    with AnyReader([bag], default_typestore=episode_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == "/sim/task_state"]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            q = msg.object_poses[list(msg.object_names).index("SquareNut_main")].orientation
            return yaw_of([q.x, q.y, q.z, q.w])
    raise ValueError(f"{bag} has no /sim/task_state")


def first_frames(path: Path, frames_per_episode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8, nut yaw per frame [rad], episode index per frame) of one dataset."""
    dataset = EpisodeDataset(path)
    frames, yaws, episodes = [], [], []
    for index in range(len(dataset)):
        episode = dataset.episode(index)
        yaw = start_yaw(Path(episode["record"].bag))
        frames.append(np.asarray(episode["frames"][:frames_per_episode]))
        yaws += [yaw] * len(frames[-1])
        episodes += [index] * len(frames[-1])
    return np.concatenate(frames), np.array(yaws), np.array(episodes)


@torch.no_grad()
def encoder_features(policy: VLAPolicy, frames: np.ndarray, batch: int = 64) -> torch.Tensor:
    size = policy.model.config.vision_config["image_size"]
    rows = []
    for start in range(0, len(frames), batch):
        pixels = images_to_pixels(frames[start : start + batch], size)
        rows.append(policy.model.vision(pixel_values=pixels).last_hidden_state.flatten(1))
    return torch.cat(rows).double()


def untrained(policy: VLAPolicy) -> VLAPolicy:
    """A policy of the same configuration with freshly initialised weights (seed 0)."""
    torch.manual_seed(0)
    return VLAPolicy(VLAForActionPrediction(policy.model.config), policy.tokenizer, policy.stats)


def pixel_features(frames: np.ndarray, size: int) -> torch.Tensor:
    return images_to_pixels(frames, size).flatten(1).double()


def ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, ...]:
    """Weights, feature mean and scale, target mean of a ridge fit of y on standardised x (dual form)."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    alpha = torch.linalg.solve(z @ z.T + lam * torch.eye(len(z), dtype=z.dtype), y - y.mean(0))
    return z.T @ alpha, mean, scale, y.mean(0)


def predict(fit, x: torch.Tensor) -> torch.Tensor:
    weights, mean, scale, offset = fit
    return ((x - mean) / scale) @ weights + offset


def angle_errors(prediction: torch.Tensor, yaw: np.ndarray) -> tuple[float, float]:
    """Median |error| [deg] of the handle direction (mod 360) and of the grasp axis (mod 180)."""
    predicted = np.arctan2(prediction[:, 1].numpy(), prediction[:, 0].numpy())
    error = np.abs((predicted - yaw + math.pi) % (2 * math.pi) - math.pi)
    axis = np.minimum(error, math.pi - error)
    return float(np.degrees(np.median(error))), float(np.degrees(np.median(axis)))


def probe(name: str, train_x, train_y, train_episodes, test_x, test_yaw) -> None:
    """Choose lambda on a fifth of the training episodes, refit on all, report on the test set."""
    target = torch.from_numpy(np.stack([np.cos(train_y), np.sin(train_y)], 1))
    held = train_episodes % 5 == 0
    scores = {}
    for lam in LAMBDAS:
        fit = ridge(train_x[~held], target[~held], lam)
        scores[lam] = angle_errors(predict(fit, train_x[held]), train_y[held])[0]
    lam = min(scores, key=scores.get)
    direction, axis = angle_errors(predict(ridge(train_x, target, lam), test_x), test_yaw)
    print(f"{name}: handle direction {direction:.0f} deg, grasp axis {axis:.0f} deg (median error; lambda {lam:g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="dataset whose first frames fit the probe")
    parser.add_argument("--test", type=Path, required=True, help="dataset of other scenes to report on")
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="VLA checkpoints to probe")
    parser.add_argument("--frames-per-episode", type=int, default=8, help="first frames of each episode")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train_frames, train_yaw, train_episodes = first_frames(args.train, args.frames_per_episode)
    test_frames, test_yaw, _ = first_frames(args.test, args.frames_per_episode)
    print(f"{len(train_frames)} training frames, {len(test_frames)} test frames")
    policies = {checkpoint: VLAPolicy.from_pretrained(checkpoint) for checkpoint in args.checkpoints}
    for size in sorted({policy.model.config.vision_config["image_size"] for policy in policies.values()}):
        probe(
            f"raw pixels at {size} px",
            pixel_features(train_frames, size),
            train_yaw,
            train_episodes,
            pixel_features(test_frames, size),
            test_yaw,
        )
    controls = {}
    for policy in policies.values():
        vision = policy.model.config.vision_config
        name = f"untrained encoder, {vision['image_size']} px, {vision['patch_size']} px patches"
        controls.setdefault(name, untrained(policy))
    for name, policy in {**controls, **{f"{c} encoder": p for c, p in policies.items()}}.items():
        probe(
            name,
            encoder_features(policy, train_frames),
            train_yaw,
            train_episodes,
            encoder_features(policy, test_frames),
            test_yaw,
        )


if __name__ == "__main__":
    main()
