"""How far did an update move a policy's greedy actions along recorded trajectories?

GRPO's clipped ratio bounds how much the probability of a *sampled* token changes (at the sampling
temperature); a greedy evaluation takes the arg-max bin instead, which flips as soon as two bins'
logits swap. ``greedy_drift`` replays recorded episodes teacher-forced through a policy and
compares, on the executed action tokens, its arg-max bins with the recorded ones (the recording
policy's greedy choice): the share kept, how many bins a flipped token moved, the flipped share
per action dimension, the chunks with a flipped token, and the recorded tokens' probability
ratio against the reference at ``temperature``.
"""

from dataclasses import dataclass

import numpy as np
import torch

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_trainer.real_trajectories import episode_chunks


@dataclass
class GreedyDrift:
    kept: float  # share of executed tokens whose arg-max is still the recorded bin
    bins_per_flip: float  # mean |arg-max - recorded| over flipped tokens, in bins
    flipped_per_dimension: list[float]  # flipped share per action dimension (D,)
    chunks_flipped: int  # chunks with at least one flipped token
    chunks: int
    mean_ratio: float  # mean p_new / p_reference of the recorded tokens at the temperature
    max_abs_log_ratio: float

    @property
    def flipped(self) -> float:
        return 1.0 - self.kept


@torch.no_grad()
def replay(policy, observations, instruction: str, bins: torch.Tensor, temperature: float):
    """Teacher-forced (arg-max bins (C, K*D), log-probs of ``bins`` at ``temperature`` (C, K*D))."""
    policy.model.eval()
    inputs = policy.encode(observations, [instruction] * len(observations))
    logits = policy.model.action_logits(**inputs, action_bins=bins)
    logp = torch.log_softmax(logits / temperature, dim=-1).gather(-1, bins.unsqueeze(-1)).squeeze(-1)
    return logits.argmax(dim=-1), logp


def greedy_drift(reference, policy, data: EpisodeDataset, episodes: list[int], temperature: float = 1.6) -> GreedyDrift:
    """Drift of ``policy`` from the recorded bins of ``episodes`` (recorded by ``reference``,
    whose statistics bin them). The reference itself keeps every token the safety filter did not
    clip."""
    dims = reference.model.config.action_dim
    kept = tokens = chunks_flipped = chunks = moved = 0
    flips_per_dim, tokens_per_dim = torch.zeros(dims), torch.zeros(dims)
    log_ratios = []
    for index in episodes:
        observations, bins, mask = episode_chunks(reference, data, index)
        instruction = data.records[index].instruction
        _, old = replay(reference, observations, instruction, bins, temperature)
        greedy, logp = replay(policy, observations, instruction, bins, temperature)
        same = (greedy == bins) | ~mask
        kept += int(same[mask].sum())
        moved += int((greedy - bins).abs()[~same].sum())
        flips_per_dim += (~same).view(len(bins), -1, dims).sum(dim=(0, 1))
        tokens_per_dim += mask.view(len(bins), -1, dims).sum(dim=(0, 1))
        tokens += int(mask.sum())
        chunks_flipped += int((~same).any(dim=1).sum())
        chunks += len(bins)
        log_ratios.append((logp - old)[mask])
    if not tokens:
        raise ValueError("no executed action tokens in the given episodes")
    log_ratio = torch.cat(log_ratios)
    return GreedyDrift(
        kept=kept / tokens,
        bins_per_flip=moved / max(1, tokens - kept),
        flipped_per_dimension=(flips_per_dim / tokens_per_dim.clamp(min=1)).tolist(),
        chunks_flipped=chunks_flipped,
        chunks=chunks,
        mean_ratio=float(log_ratio.exp().mean()),
        max_abs_log_ratio=float(log_ratio.abs().max()),
    )


@torch.no_grad()
def greedy_bins(policy, observations, instructions: list[str], batch: int = 32) -> torch.Tensor:
    """Greedy bins (N, K*D) of ``policy`` on frames (N, H, W, 3) with their instructions."""
    policy.model.eval()
    parts = []
    for start in range(0, len(observations), batch):
        inputs = policy.encode(observations[start : start + batch], instructions[start : start + batch])
        parts.append(policy.model.generate_bins(**inputs)[0])
    return torch.cat(parts)


def greedy_flips(before, after, observations, instructions: list[str]) -> float:
    """Share of action tokens whose greedy bin differs between two policies on the same frames
    (what a greedy evaluation sees change after an update)."""
    return float(
        (greedy_bins(before, observations, instructions) != greedy_bins(after, observations, instructions))
        .float()
        .mean()
    )


def deployment_gate(before, after, data: EpisodeDataset, limit: float) -> dict:
    """Greedy tokens of ``after`` that differ from ``before`` on the chunk-start frames of the
    successful episodes of ``data`` (all of them when none succeeded), and the verdict: deploy
    only when that share is at most ``limit``. Returns a JSON-ready record with the reason."""
    successes = [i for i, r in enumerate(data.records) if r.outcome == "success"]
    episodes = successes or list(range(len(data.records)))
    if not episodes:
        raise ValueError("the gate needs at least one recorded episode")
    horizon = before.model.config.chunk_size
    frames, instructions = [], []
    for index in episodes:
        record = data.records[index]
        starts = np.asarray(data.episode(index)["frames"])[np.arange(0, record.num_steps, horizon)]
        frames.append(starts)
        instructions += [record.instruction] * len(starts)
    flipped = greedy_flips(before, after, np.concatenate(frames), instructions)
    deploy = flipped <= limit
    on = f"{len(episodes)} {'successful' if successes else 'recorded (no successful)'} episodes"
    reason = f"greedy tokens flipped {flipped:.4f} {'<=' if deploy else '>'} limit {limit} on {on}"
    return {"deploy": deploy, "greedy_flipped": flipped, "limit": limit, "episodes": len(episodes), "reason": reason}
