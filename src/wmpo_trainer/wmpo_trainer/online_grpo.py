"""Model-free online GRPO baseline: the same GRPO update, on real (simulated-arm) episodes.

Each iteration collects ``groups_per_iteration`` groups of G episodes, a group per start state
(initial-state id), with the current policy at the RL temperature; rewards are the simulator's
success labels. The real-episode budget P = iterations * groups_per_iteration * G is spent in
the simulator, which is what WMPO saves. The collector is a callable (the sim graph through
ROS in practice: wmpo_jobs.collector.SimCollector), so this module needs no ROS.
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import OnlineGRPOConfig
from wmpo_trainer.grpo import group_advantages, informative_groups
from wmpo_trainer.policy_update import grpo_update
from wmpo_trainer.real_trajectories import recorded_trajectories


def train(config: OnlineGRPOConfig, collect) -> Path:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "online_grpo_config.json", asdict(config))
    grpo = config.grpo
    per_iteration = config.groups_per_iteration * grpo.group_size
    iterations = max(1, config.budget // per_iteration)
    policy = VLAPolicy.from_pretrained(config.policy, config.device)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=grpo.learning_rate, weight_decay=0.0)
    checkpoint, history = Path(config.policy), []
    for iteration in range(1, iterations + 1):
        first = config.first_init_state + (iteration - 1) * config.groups_per_iteration
        goals = [  # a group's G alike goals draw apart; no iteration repeats another's draws
            {
                "init_state_id": first + g,
                "sampling_seed": (first + g) * grpo.group_size + j,
                "max_steps": config.max_steps,
                "record_mode": "all",
            }
            for g in range(config.groups_per_iteration)
            for j in range(grpo.group_size)
        ]
        report = collect(config.task, str(checkpoint), goals, output / f"iter_{iteration}", grpo.temperature)
        data = EpisodeDataset(Path(report["dataset"]))
        by_start: dict[int, list[int]] = {}
        for i, record in enumerate(data.records):
            by_start.setdefault(record.init_state_id, []).append(i)
        oversized = [f"start state {s}: {len(v)} episodes" for s, v in by_start.items() if len(v) > grpo.group_size]
        if oversized:  # a collection that ran goals twice: its groups are not groups of G rollouts
            raise ValueError(f"{report['dataset']}: {', '.join(oversized)}, G = {grpo.group_size}")
        groups = [indices for indices in by_start.values() if len(indices) == grpo.group_size]
        rewards = np.array([[float(data.records[i].outcome == "success") for i in g] for g in groups])
        keep = informative_groups(rewards) if len(groups) else np.zeros(0, bool)
        row = {
            "iteration": iteration,
            "episodes": len(data.records),
            "success_rate": float(rewards.mean()) if len(groups) else 0.0,
            "informative_groups": int(keep.sum()),
            "short_groups": len(by_start) - len(groups),  # start states with incomplete episodes left out
        }
        if keep.any():
            indices = [i for g, k in zip(groups, keep, strict=True) if k for i in g]
            trajectories, _ = recorded_trajectories(policy, data, indices, grpo.temperature)
            trajectories.advantages = group_advantages(torch.as_tensor(rewards[keep])).view(-1)
            row.update(grpo_update(policy, optimizer, trajectories, grpo, rng))
        checkpoint = policy.save_pretrained(output / "checkpoints" / f"iter_{iteration}")
        history.append(row)
        write_json(output / "history.json", history)
    return checkpoint
