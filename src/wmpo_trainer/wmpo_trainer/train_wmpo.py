"""WMPO: GRPO of the VLA inside the world model, readable top to bottom (CleanRL).

  wmpo train-wmpo --policy runs/base/Lift/bc/checkpoints/step_1500 --world-model WM --reward-model RM \\
      --starts runs/loop/Lift/iter_0/rollouts --output runs/wmpo/lift

Each iteration: take start frames of real episodes -> G imagined rollouts from each, sampled at
the RL temperature -> rewards from the reward model (success anywhere in the sliding window; with
held-out judges, from the fold model not fine-tuned on the start episode) ->
drop groups whose rollouts all agree and sample more (dynamic sampling) -> group-normalised
advantages -> token-level clipped updates (no KL), masking the chunks after the success frame ->
a policy checkpoint. TensorBoard: imagined success rate, loss, clip fraction, ratio.

Under torchrun the update is data parallel (wmpo_trainer.data_parallel): rank 0 imagines and
writes, every rank takes its share of each mini-batch.
"""

import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import WMPOConfig
from wmpo_trainer.data_parallel import broadcast_from_main, init_data_parallel, leave_data_parallel
from wmpo_trainer.grpo import chunk_mask, group_advantages, informative_groups
from wmpo_trainer.policy_update import Trajectories, grpo_update
from wmpo_worldmodel.calibration import HeldOutJudges
from wmpo_worldmodel.imagination import ImaginedBatch, imagine, judge_rollouts, rollout_start
from wmpo_worldmodel.pipeline import WorldModelPipeline
from wmpo_worldmodel.reward_model import VideoRewardModel

TRAINER_STATE = "trainer_state.pt"


def collect(config, policy, world_model, judges, starts, rng, generator, imagine_fn=imagine):
    """Imagine groups until ``start_states`` informative groups are in hand or the sampling rounds
    run out (dynamic sampling); a rollout from ``starts[i]`` is judged by ``judges[i]``. Returns the
    informative groups as one batch (None if there are none) and counts: groups imagined, groups
    kept, success rate over every imagined rollout."""
    grpo, size = config.grpo, config.grpo.group_size
    kept, imagined, successes = [], 0, 0
    nc = world_model.unet.config.context_frames
    for _ in range(grpo.max_sampling_rounds):
        picks = rng.integers(0, len(starts), grpo.start_states - len(kept))
        contexts, instructions, budgets = [], [], []
        for frames, instruction in (starts[i] for i in picks):
            context, budget = rollout_start(frames, config.max_steps, config.real_context_fraction, nc, rng)
            contexts += [context] * size
            instructions += [instruction] * size
            budgets += [budget] * size
        batch = imagine_fn(
            world_model,
            policy,
            np.stack(contexts),
            instructions,
            np.array(budgets),
            grpo.temperature,
            None,
            config.sampler,
            config.sampler_steps,
            generator,
        )
        judge_rollouts(batch, [judges[i] for i in picks for _ in range(size)])
        imagined += len(picks)
        successes += int(batch.success.sum())
        rewards = batch.success.reshape(len(picks), size)
        kept += [(batch, g) for g in np.flatnonzero(informative_groups(rewards))]
        if len(kept) >= grpo.start_states:
            break
    counts = {
        "imagined_groups": imagined,
        "informative_groups": len(kept),
        "imagined_success_rate": successes / (imagined * size),
    }
    if not kept:
        return None, counts

    def group(b, g, values):
        return values[g * size : (g + 1) * size]

    merged = ImaginedBatch(
        frames=np.concatenate([group(b, g, b.frames) for b, g in kept]),
        actions=np.concatenate([group(b, g, b.actions) for b, g in kept]),
        bins=torch.cat([group(b, g, b.bins) for b, g in kept]),
        log_probs=torch.cat([group(b, g, b.log_probs) for b, g in kept]),
        instructions=[i for b, g in kept for i in group(b, g, b.instructions)],
        success=np.concatenate([group(b, g, b.success) for b, g in kept]),
        success_frame=np.concatenate([group(b, g, b.success_frame) for b, g in kept]),
        budgets=np.concatenate([group(b, g, b.budgets) for b, g in kept]),
    )
    return merged, counts


def start_judges(config: WMPOConfig, count: int, device: str) -> list[VideoRewardModel]:
    """The judge of each of the ``count`` start episodes: the reward model, or with
    ``held_out_judges`` the fold model not fine-tuned on that episode."""
    if not config.held_out_judges:
        judges = [VideoRewardModel.from_pretrained(config.reward_model, device)] * count
    else:
        held_out = HeldOutJudges.load(json.loads(Path(config.held_out_judges).read_text()), device)
        if len(held_out.fold) != count:
            raise ValueError(
                f"the held-out judges {config.held_out_judges} cover {len(held_out.fold)} start episodes, "
                f"the starts {config.starts} hold {count}: they must be the episodes the folds were made of"
            )
        judges = held_out.episode_judges()
    for judge in set(judges):
        judge.refuse_keyframe_starts(config.real_context_fraction)
    return judges


def imagined_trajectories(batch: ImaginedBatch, group_size: int, horizon: int) -> Trajectories:
    """GRPO's view of judged imagined groups (rollouts g*G .. g*G + G - 1 share a start): group
    advantages of the verdicts; the action tokens of chunks that start at or after a rollout's
    success frame or its step budget are masked."""
    rewards = torch.as_tensor(batch.success, dtype=torch.float32).view(-1, group_size)
    mask = chunk_mask(torch.as_tensor(batch.success_frame), batch.num_chunks, horizon, torch.as_tensor(batch.budgets))
    return Trajectories(
        observations=batch.frames[:, ::horizon][:, : batch.num_chunks],  # the frames the policy saw
        instructions=batch.instructions,
        bins=batch.bins,
        old_log_probs=batch.log_probs,
        advantages=group_advantages(rewards).view(-1),
        token_mask=mask[:, :, None].expand_as(batch.bins).clone(),
    )


def train(config: WMPOConfig) -> Path:
    # -- set-up ----------------------------------------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    parallel, device = init_data_parallel(config.device)
    output = Path(config.output)
    grpo = config.grpo
    checkpoints = sorted((output / "checkpoints").glob("iter_*"), key=lambda p: int(p.name.split("_")[1]))
    policy = VLAPolicy.from_pretrained(checkpoints[-1] if checkpoints else config.policy, device)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=grpo.learning_rate, weight_decay=0.0)
    done = 0  # iterations finished
    if checkpoints:
        state = torch.load(checkpoints[-1] / TRAINER_STATE, weights_only=True, map_location=device)
        optimizer.load_state_dict(state["optimizer"])
        done = int(state["iteration"])
    rng = np.random.default_rng(config.seed + done)
    horizon = policy.model.config.chunk_size
    if parallel.is_main:  # imagination, logs and checkpoints
        starts = [
            (data.episode(i)["frames"], data.records[i].instruction)
            for data in (EpisodeDataset(Path(p)) for p in config.starts)
            for i in range(len(data))
        ]
        judges = start_judges(config, len(starts), device)  # refused before anything is written
        output.mkdir(parents=True, exist_ok=True)
        write_json(output / "wmpo_config.json", asdict(config))
        world_model = WorldModelPipeline.load(config.world_model, device)
        imagine_fn = imagine
        if config.ray_workers > 0:
            from wmpo_trainer.ray_imagination import RayImagination

            imagine_fn = RayImagination(config.ray_workers, config.policy, config.world_model)
        generator = torch.Generator().manual_seed(config.seed + done)
        writer = SummaryWriter(str(output / "tb"))
        history_file = output / "history.json"
        history = json.loads(history_file.read_text()) if history_file.exists() else []

    # -- iterations --------------------------------------------------------------------------------
    iterations = range(done + 1, config.iterations + 1)
    for iteration in tqdm(iterations, desc="WMPO", unit="iteration", disable=not parallel.is_main):
        started = time.monotonic()
        policy.model.eval()
        trajectories, row = None, {"iteration": iteration}
        if parallel.is_main:
            batch, counts = collect(config, policy, world_model, judges, starts, rng, generator, imagine_fn)
            row.update(counts)
            if batch is not None:
                trajectories = imagined_trajectories(batch, grpo.group_size, horizon)
        # Every rank updates on rank 0's batch with the same mini-batch order.
        trajectories, update_seed = broadcast_from_main((trajectories, int(rng.integers(2**31))), parallel)
        if trajectories is not None:
            row.update(grpo_update(policy, optimizer, trajectories, grpo, np.random.default_rng(update_seed), parallel))
        if not parallel.is_main:
            continue
        row["seconds"] = round(time.monotonic() - started, 1)
        for key, value in row.items():
            if key != "iteration":
                writer.add_scalar(f"wmpo/{key}", value, iteration)
        history.append(row)
        state = {"optimizer": optimizer.state_dict(), "iteration": iteration}
        policy.save_pretrained(output / "checkpoints" / f"iter_{iteration}", extra={TRAINER_STATE: state})
        write_json(history_file, history)
    final = output / "checkpoints" / f"iter_{config.iterations}"
    if parallel.is_main:
        writer.close()
        if config.ray_workers > 0:
            imagine_fn.shutdown()
        print(f"checkpoint: {final}")
    leave_data_parallel(parallel)
    return final
