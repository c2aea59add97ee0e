"""The imagination API for the trainer: start frames + a policy -> imagined episodes and rewards.

A batch of B rollouts runs in lockstep: the policy sees the newest frame of each rollout and
returns a chunk of K actions, the world model imagines the K frames that follow, and so on for
ceil(max_steps / K) chunks. Rollouts start from a start frame repeated as context (the paper), or
from real mid-episode context frames (keyframe starts, ``start_context``: WoVR found this reduces
compounding error); a rollout from step s of a real episode has the steps left of the budget,
max_steps - s, so each rollout may have its own budget. With a reward model, each rollout is
judged by its sliding window within its budget; the success frame lets the trainer mask the action
tokens after it.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from wmpo_worldmodel.pipeline import WorldModelPipeline, to_model_frames, to_uint8_frames
from wmpo_worldmodel.reward_model import EpisodeVerdict, VideoRewardModel


@dataclass
class ImaginedBatch:
    frames: np.ndarray  # uint8 (B, 1 + C*K, S, S, 3): frame 0 = start, frame t = after action t-1
    actions: np.ndarray  # (B, C*K, 7) controller units
    bins: torch.Tensor  # (B, C, K*D) action bins chosen by the policy
    log_probs: torch.Tensor  # (B, C, K*D) their log-probs at the sampling temperature
    instructions: list[str]  # (B,)
    success: np.ndarray | None = None  # (B,) bool, when a reward model judged the rollouts
    success_frame: np.ndarray | None = None  # (B,) int, -1 = no success
    budgets: np.ndarray | None = None  # (B,) int control steps within each rollout's budget (<= C*K)

    @property
    def num_chunks(self) -> int:
        return self.bins.shape[1]


def start_context(frames: np.ndarray, step: int, context_frames: int) -> np.ndarray:
    """The Nc real frames up to ``step`` of one episode (uint8 (T+1, H, W, 3)); frame 0 repeats
    before the start, as a rollout from the first frame does."""
    return np.asarray(frames)[np.maximum(np.arange(step - context_frames + 1, step + 1), 0)]


def rollout_start(
    frames: np.ndarray, max_steps: int, real_context_fraction: float, context_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Where an imagined rollout of a real episode (uint8 (T+1, H, W, 3)) starts: its first frame,
    or with probability ``real_context_fraction`` a uniformly drawn real keyframe, a step s before
    the episode's last frame and the budget's last step. Returns the Nc context frames up to s and
    the steps the real episode had left, max_steps - s."""
    step = 0
    if rng.random() < real_context_fraction:
        step = int(rng.integers(0, max(1, min(len(frames), max_steps) - 1)))
    return start_context(frames, step, context_frames), max_steps - step


def imagine(
    world_model: WorldModelPipeline,
    policy,
    contexts: np.ndarray,
    instructions: list[str],
    max_steps: int | np.ndarray,
    temperature: float = 1.0,
    reward_model: VideoRewardModel | None = None,
    sampler: str = "ddim",
    sampler_steps: int = 10,
    generator: torch.Generator | None = None,
    num_chunks: int | None = None,
) -> ImaginedBatch:
    """contexts: uint8 (B, H, W, 3) start frames, or (B, Nc, H, W, 3) real context frames.
    max_steps: the step budget, one for all or (B,) each rollout's own (>= 1). num_chunks: chunks
    to imagine, at least enough for the largest budget (None = just enough: ceil(max / K)).
    ``policy``: a VLAPolicy (predict(images, instructions, temperature, generator))."""
    contexts = np.asarray(contexts)
    nc, horizon = world_model.unet.config.context_frames, policy.model.config.chunk_size
    if contexts.ndim == 4:
        contexts = np.repeat(contexts[:, None], nc, axis=1)
    if contexts.shape[1] != nc or len(contexts) != len(instructions):
        raise ValueError(f"need (B, {nc}, H, W, 3) contexts and B instructions, got {contexts.shape}")
    budgets = np.broadcast_to(np.asarray(max_steps, dtype=np.int64), (len(contexts),)).copy()
    if budgets.min(initial=1) < 1:
        raise ValueError(f"every rollout needs a step budget of at least 1, got {budgets.tolist()}")
    needed = math.ceil(budgets.max(initial=0) / horizon)
    if num_chunks is not None and num_chunks < needed:
        raise ValueError(f"{num_chunks} chunks of {horizon} steps do not cover a budget of {budgets.max()} steps")
    num_chunks = needed if num_chunks is None else num_chunks
    size = world_model.unet.config.sample_size * world_model.vae_scale
    context = to_uint8_frames(to_model_frames(contexts, size, "cpu"))  # at the world model's size
    frames, actions, bins, log_probs = [context[:, -1:]], [], [], []
    chunks = tqdm(
        range(num_chunks),
        f"imagining {len(contexts)} rollouts",
        unit="chunk",
        leave=False,
        disable=None,
    )
    for _ in chunks:  # the bar shows on a terminal only (disable=None)
        chunk, chunk_bins, chunk_log_probs = policy.predict(frames[-1][:, -1], instructions, temperature, generator)
        new = world_model(context, chunk, sampler_steps, sampler, generator)
        context = np.concatenate([context, new], axis=1)[:, -nc:]
        frames.append(new)
        actions.append(chunk)
        bins.append(chunk_bins)
        log_probs.append(chunk_log_probs)
    batch = ImaginedBatch(
        frames=np.concatenate(frames, axis=1),
        actions=np.concatenate(actions, axis=1),
        bins=torch.stack(bins, dim=1),
        log_probs=torch.stack(log_probs, dim=1),
        instructions=list(instructions),
        budgets=budgets,
    )
    if reward_model is not None:
        judge_rollouts(batch, [reward_model] * len(contexts))
    return batch


def judge_rollouts(batch: ImaginedBatch, judges: list[VideoRewardModel]) -> list[EpisodeVerdict]:
    """Judge rollout b by ``judges[b]`` within its step budget (whole chunks may run past it; a
    success seen only there is a failure); sets ``batch.success`` and ``batch.success_frame`` and
    returns the verdicts."""
    if len(judges) != len(batch.frames):
        raise ValueError(f"{len(judges)} judges for {len(batch.frames)} rollouts")
    rollouts = zip(judges, batch.frames, batch.budgets, strict=True)
    verdicts = [judge.judge(frames[: budget + 1]) for judge, frames, budget in rollouts]
    batch.success = np.array([v.success for v in verdicts])
    batch.success_frame = np.array([v.success_frame for v in verdicts])
    return verdicts
