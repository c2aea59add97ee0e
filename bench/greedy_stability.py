"""Greedy stability of VLA checkpoints under one fixed small GRPO step, side by side.

For each checkpoint: take chunk-start frames of a dataset's episodes, let the policy choose its
greedy bins there, give the chunks fixed advantages (+1 / -1 alternately per episode), take ONE
AdamW step of the clipped GRPO loss at ``--learning-rate`` (every trajectory in one mini-batch, the
sampling temperature 1.6), and count the share of greedy tokens that flipped on the same frames
(``wmpo_trainer.greedy_drift.greedy_flips``). Adam's step is about the learning rate per weight
whatever the gradient's scale, so the perturbation is comparable across models. Lower is more
stable; the ratio is against the first checkpoint.

  python bench/greedy_stability.py --dataset runs/base/Lift/data \
      --checkpoints siglip=runs/bc_siglip/checkpoints/step_3000 lite0=runs/base/Lift/bc/checkpoints/step_3000
"""

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import GRPOConfig
from wmpo_trainer.greedy_drift import greedy_bins, greedy_flips
from wmpo_trainer.policy_update import Trajectories, grpo_update
from wmpo_trainer.real_trajectories import sequence_log_probs


def perturbed(policy: VLAPolicy, frames: np.ndarray, instructions: list[str], learning_rate: float) -> VLAPolicy:
    """A copy of ``policy`` after one GRPO step on its own greedy chunks with fixed advantages."""
    after = copy.deepcopy(policy)
    bins = greedy_bins(policy, frames, instructions)[:, None]  # (N, 1, K*D): one chunk per trajectory
    observations = frames[:, None]
    grpo = GRPOConfig(learning_rate=learning_rate, mini_batch=len(frames), micro_batch=8)
    old = sequence_log_probs(policy, observations, instructions, bins, grpo.temperature)
    advantages = torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(len(frames))])
    trajectories = Trajectories(
        observations, instructions, bins, old, advantages, torch.ones_like(bins, dtype=torch.bool)
    )
    trainable = [p for p in after.model.parameters() if p.requires_grad]
    grpo_update(after, torch.optim.AdamW(trainable, lr=learning_rate), trajectories, grpo, np.random.default_rng(0))
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--frames", type=int, default=64, help="chunk-start frames (spread over the episodes)")
    parser.add_argument("--learning-rate", type=float, default=GRPOConfig.learning_rate, help="the RL learning rate")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data = EpisodeDataset(Path(args.dataset))
    rng = np.random.default_rng(0)
    picks = [(i, int(k)) for i in range(len(data.records)) for k in range(0, data.records[i].num_steps, 8)]
    picks = [picks[j] for j in sorted(rng.choice(len(picks), min(args.frames, len(picks)), replace=False))]
    frames = np.stack([np.asarray(data.episode(i)["frames"][k]) for i, k in picks])
    instructions = [data.records[i].instruction for i, _ in picks]
    print(f"{len(frames)} frames of {args.dataset}; one GRPO step at learning rate {args.learning_rate}")
    print("| checkpoint | vision tower | greedy tokens flipped | stability ratio (first / this) |")
    print("|---|---|---|---|")
    first = None
    for item in args.checkpoints:
        name, _, path = item.partition("=")
        policy = VLAPolicy.from_pretrained(path)
        flipped = greedy_flips(
            policy, perturbed(policy, frames, instructions, args.learning_rate), frames, instructions
        )
        first = flipped if first is None else first
        ratio = first / flipped if flipped else float("inf")
        print(f"| {name} | {policy.model.config.vision_tower} | {flipped:.4f} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
