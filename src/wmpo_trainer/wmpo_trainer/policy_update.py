"""One GRPO policy update on trajectories, imagined (WMPO) or real (model-free GRPO).

A trajectory is what the policy saw and chose, chunk by chunk: the frame before each chunk, the
chosen bins and their log-probs at sampling time. Trajectories of different lengths are padded
to C chunks with ``token_mask`` False (so are chunks after the success frame).
"""

from dataclasses import dataclass

import numpy as np
import torch

from wmpo_trainer.grpo import GRPOConfig, clipped_policy_loss


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


def grpo_update(policy, optimizer, trajectories: Trajectories, grpo: GRPOConfig, rng: np.random.Generator) -> dict:
    """``grpo.epochs`` passes over the trajectories in mini-batches of ``grpo.mini_batch``, each
    accumulated over micro-batches of ``grpo.micro_batch``. Returns mean loss, clip fraction, ratio."""
    count, chunks = trajectories.bins.shape[:2]
    token_mask = trajectories.token_mask.reshape(count, -1)
    old_log_probs = trajectories.old_log_probs.reshape(count, -1)
    policy.model.train()
    stats = []
    for _ in range(grpo.epochs):
        order = rng.permutation(count)
        for start in range(0, count, grpo.mini_batch):
            mini = order[start : start + grpo.mini_batch]
            optimizer.zero_grad()
            for micro_start in range(0, len(mini), grpo.micro_batch):
                micro = mini[micro_start : micro_start + grpo.micro_batch]
                images = trajectories.observations[micro]
                instructions = [trajectories.instructions[i] for i in micro for _ in range(chunks)]
                inputs = policy.encode(images.reshape(-1, *images.shape[2:]), instructions)
                bins = trajectories.bins[micro].reshape(-1, trajectories.bins.shape[-1])
                new = policy.model.token_log_probs(**inputs, action_bins=bins, temperature=grpo.temperature)
                loss, step_stats = clipped_policy_loss(
                    new.view(len(micro), -1),
                    old_log_probs[micro],
                    trajectories.advantages[micro],
                    token_mask[micro],
                    grpo.clip_low,
                    grpo.clip_high,
                )
                (loss * len(micro) / len(mini)).backward()
                stats.append({"loss": loss.item(), **step_stats})
            torch.nn.utils.clip_grad_norm_(policy.model.parameters(), grpo.grad_clip)
            optimizer.step()
    policy.model.eval()
    return {key: float(np.mean([s[key] for s in stats])) for key in stats[0]}
