"""One GRPO policy update on trajectories, imagined (WMPO) or real (model-free GRPO).

A trajectory is what the policy saw and chose, chunk by chunk: the frame before each chunk, the
chosen bins and their log-probs at sampling time. Trajectories of different lengths are padded
to C chunks with ``token_mask`` False (so are chunks after the success frame).

Data parallel (torchrun): every rank runs ``grpo_update`` on the same trajectories and the same
``rng`` state, takes its share of each mini-batch, and the gradients are summed across ranks
(``wmpo_trainer.data_parallel``); the step equals one process's on the whole mini-batch.
"""

from dataclasses import dataclass

import numpy as np
import torch

from wmpo_trainer.configs import GRPOConfig
from wmpo_trainer.data_parallel import SINGLE_PROCESS, DataParallel, mean_over_ranks, sum_gradients
from wmpo_trainer.grpo import clipped_policy_loss

STATISTICS = ("loss", "clip_fraction", "ratio_mean")


@dataclass
class Trajectories:
    observations: np.ndarray  # uint8 (B, C, H, W, 3): the frame the policy saw before each chunk
    instructions: list[str]  # (B,)
    bins: torch.Tensor  # (B, C, K*D) chosen action bins
    old_log_probs: torch.Tensor  # (B, C, K*D) their log-probs at sampling time (same temperature)
    advantages: torch.Tensor  # (B,)
    token_mask: torch.Tensor  # (B, C, K*D) bool: tokens that count in the loss

    def __len__(self) -> int:
        return len(self.instructions)


def grpo_update(
    policy,
    optimizer,
    trajectories: Trajectories,
    grpo: GRPOConfig,
    rng: np.random.Generator,
    parallel: DataParallel = SINGLE_PROCESS,
) -> dict:
    """``grpo.epochs`` passes over the trajectories in mini-batches of ``grpo.mini_batch``, each
    accumulated over micro-batches of ``grpo.micro_batch`` (this rank's share of it when data
    parallel). Returns mean loss, clip fraction and ratio over the micro-batches of every rank."""
    count, chunks = trajectories.bins.shape[:2]
    device = policy.device  # trajectories may come from another device (rewards, masks and advantages on the CPU)
    token_mask = trajectories.token_mask.reshape(count, -1).to(device)
    old_log_probs = trajectories.old_log_probs.reshape(count, -1).to(device)
    advantages = trajectories.advantages.to(device)
    all_bins = trajectories.bins.to(device)
    policy.model.train()
    stats = []
    for _ in range(grpo.epochs):
        order = rng.permutation(count)
        for start in range(0, count, grpo.mini_batch):
            mini = order[start : start + grpo.mini_batch]
            share = parallel.share(mini)
            optimizer.zero_grad()
            for micro_start in range(0, len(share), grpo.micro_batch):
                micro = share[micro_start : micro_start + grpo.micro_batch]
                images = trajectories.observations[micro]
                instructions = [trajectories.instructions[i] for i in micro for _ in range(chunks)]
                inputs = policy.encode(images.reshape(-1, *images.shape[2:]), instructions)
                bins = all_bins[micro].reshape(-1, all_bins.shape[-1])
                new = policy.model.token_log_probs(**inputs, action_bins=bins, temperature=grpo.temperature)
                loss, step_stats = clipped_policy_loss(
                    new.view(len(micro), -1),
                    old_log_probs[micro],
                    advantages[micro],
                    token_mask[micro],
                    grpo.clip_low,
                    grpo.clip_high,
                )
                (loss * len(micro) / len(mini)).backward()
                stats.append({"loss": loss.item(), **step_stats})
            sum_gradients(policy.model.parameters(), parallel)
            torch.nn.utils.clip_grad_norm_(policy.model.parameters(), grpo.grad_clip)
            optimizer.step()
    policy.model.eval()
    local = {key: float(np.mean([s[key] for s in stats])) if stats else 0.0 for key in STATISTICS}
    return mean_over_ranks(local, len(stats), parallel)
