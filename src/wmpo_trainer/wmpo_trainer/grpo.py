"""GRPO pieces (DAPO-style, as WMPO uses them): group advantages, dynamic sampling, success
masking and the token-level clipped policy loss. Pure PyTorch, no ROS; shapes are explicit.

Shapes: G rollouts per group; C chunks per rollout; K*D action tokens per chunk.
"""

import numpy as np
import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """rewards (N, G) -> advantages (N, G): (R - mean) / (std + eps) within each group (std with
    Bessel's correction, as verl's GRPO). A group of equal rewards gets zero advantages."""
    rewards = rewards.float()
    return (rewards - rewards.mean(dim=1, keepdim=True)) / (rewards.std(dim=1, keepdim=True) + eps)


def informative_groups(rewards: np.ndarray) -> np.ndarray:
    """Dynamic sampling: (N, G) rewards -> (N,) bool, False for all-success or all-failure groups
    (their advantages are zero: no learning signal)."""
    rewards = np.asarray(rewards)
    return rewards.min(axis=1) != rewards.max(axis=1)


def chunk_mask(
    success_frame: torch.Tensor, num_chunks: int, chunk_size: int, budgets: torch.Tensor | None = None
) -> torch.Tensor:
    """success_frame (B,) (-1 = none; frame f follows action f - 1), budgets (B,) control steps
    (None = every chunk is within it) -> (B, C) bool: chunk c counts unless it starts at or after
    the success frame or the budget (the episode was over)."""
    starts = torch.arange(num_chunks, device=success_frame.device) * chunk_size
    ended = (success_frame[:, None] >= 0) & (starts[None, :] >= success_frame[:, None])
    if budgets is not None:
        ended |= starts[None, :] >= budgets.to(success_frame.device)[:, None]
    return ~ended


def clipped_policy_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.20,
    clip_high: float = 0.28,
) -> tuple[torch.Tensor, dict]:
    """Token-level clipped surrogate. new/old_log_probs (B, T) per token, advantages (B,) per
    trajectory, mask (B, T) bool. Token losses are averaged per trajectory (over its valid tokens),
    then over trajectories. Returns the loss and statistics (clip fraction, ratio mean)."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    advantage = advantages[:, None].to(ratio.dtype)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantage
    token_loss = -torch.minimum(unclipped, clipped)
    mask = mask.to(ratio.dtype)
    per_trajectory = (token_loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    loss = per_trajectory.mean()
    with torch.no_grad():
        valid = mask.sum().clamp(min=1.0)
        stats = {
            # tokens whose clipped term wins the min: their gradient is zero
            "clip_fraction": float(((clipped < unclipped).to(ratio.dtype) * mask).sum() / valid),
            "ratio_mean": float((ratio * mask).sum() / valid),
        }
    return loss, stats
