"""Trajectories of real (simulated-arm) episodes recorded with a VLA policy, for the model-free
baselines (online GRPO, DPO).

Chunks are executed open loop from step 0, so chunk c covers steps 8c .. 8c+7 and the policy saw
frame 8c. Its bins are the commanded actions re-binned with the policy's statistics (they are
de-normalised bin centres, so the round trip is exact); steps never executed (the episode ended
inside the chunk) are masked. Old log-probs are recomputed with the collecting policy, which is
what it computed when sampling.
"""

import numpy as np
import torch

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.action_tokens import actions_to_bins
from wmpo_trainer.policy_update import Trajectories


def episode_chunks(policy, data: EpisodeDataset, index: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """observations (C, H, W, 3), bins (C, K*D), token mask (C, K*D) of one recorded episode."""
    config = policy.model.config
    horizon, dim = config.chunk_size, config.action_dim
    episode = data.episode(index)
    steps = len(episode["commanded"])
    chunks = max(1, -(-steps // horizon))
    padded = np.zeros((chunks * horizon, dim))
    padded[:steps] = episode["commanded"]
    bins = actions_to_bins(policy.stats.normalize(padded)).reshape(chunks, horizon * dim)
    executed = (np.arange(chunks * horizon) < steps).reshape(chunks, horizon)
    mask = np.repeat(executed, dim, axis=1)
    observations = np.asarray(episode["frames"])[np.arange(chunks) * horizon]
    return observations, torch.as_tensor(bins, dtype=torch.long), torch.as_tensor(mask)


@torch.no_grad()
def sequence_log_probs(policy, observations, instructions, bins, temperature: float) -> torch.Tensor:
    """Per-token log-probs (B, C, K*D) of given bins on (B, C, H, W, 3) observations."""
    count, chunks = bins.shape[:2]
    inputs = policy.encode(
        observations.reshape(-1, *observations.shape[2:]), [i for i in instructions for _ in range(chunks)]
    )
    flat = policy.model.token_log_probs(**inputs, action_bins=bins.reshape(count * chunks, -1), temperature=temperature)
    return flat.view(count, chunks, -1)


def recorded_trajectories(policy, data: EpisodeDataset, indices, temperature: float) -> tuple[Trajectories, np.ndarray]:
    """Trajectories (advantages zero, to be filled) of episodes ``indices`` padded to the longest,
    and their rewards (1 = success)."""
    parts = [episode_chunks(policy, data, i) for i in indices]
    longest = max(len(p[0]) for p in parts)

    def pad(array, fill):
        extra = longest - len(array)
        return np.concatenate([array, np.repeat(fill[None], extra, axis=0)]) if extra else array

    observations = np.stack([pad(o, o[-1]) for o, _, _ in parts])
    bins = torch.stack([torch.as_tensor(pad(b.numpy(), b[-1].numpy())) for _, b, _ in parts])
    mask = torch.stack([torch.as_tensor(pad(m.numpy(), np.zeros_like(m[-1].numpy()))) for _, _, m in parts])
    bins, mask = bins.to(policy.device), mask.to(policy.device)  # beside the log-probs they index and mask
    instructions = [data.records[i].instruction for i in indices]
    policy.model.eval()
    old = torch.cat(
        [
            sequence_log_probs(policy, observations[s : s + 8], instructions[s : s + 8], bins[s : s + 8], temperature)
            for s in range(0, len(indices), 8)
        ]
    )
    rewards = np.array([float(data.records[i].outcome == "success") for i in indices])
    trajectories = Trajectories(
        observations, instructions, bins, old, torch.zeros(len(indices), device=policy.device), mask
    )
    return trajectories, rewards
