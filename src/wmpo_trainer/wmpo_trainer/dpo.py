"""DPO baseline (offline): prefer successful over failed rollouts of the same budget P.

Pairs: a success and a failure from the same start state where the rollouts have one, otherwise
random success/failure pairs. Loss per pair (Rafailov et al. 2023):
  -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])
with log pi(y) the sum of the executed action tokens' log-probs (temperature 1), and the
reference the policy that collected the rollouts (frozen).
"""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import DPOConfig
from wmpo_trainer.real_trajectories import recorded_trajectories


def preference_pairs(outcomes: list[bool], start_ids: list[int], rng: np.random.Generator) -> list[tuple[int, int]]:
    """(winner, loser) index pairs: each success paired with a failure of its start state if
    there is one, else with a random failure; no pairs without both outcomes."""
    successes = [i for i, o in enumerate(outcomes) if o]
    failures = [i for i, o in enumerate(outcomes) if not o]
    if not successes or not failures:
        return []
    pairs = []
    for winner in successes:
        same = [f for f in failures if start_ids[f] == start_ids[winner] and start_ids[f] >= 0]
        pairs.append((winner, int(rng.choice(same or failures))))
    return pairs


def dpo_loss(policy_w, reference_w, policy_l, reference_l, beta: float) -> torch.Tensor:
    """Mean DPO loss over pairs of sequence log-probs (each (P,))."""
    return -F.logsigmoid(beta * ((policy_w - reference_w) - (policy_l - reference_l))).mean()


def train(config: DPOConfig) -> Path:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    policy = VLAPolicy.from_pretrained(config.policy, config.device)
    datasets = [EpisodeDataset(Path(p)) for p in config.rollouts]
    trajectories, outcomes, start_ids = [], [], []
    for data in datasets:
        labelled = [i for i, r in enumerate(data.records) if r.outcome in ("success", "failure")]
        if labelled:
            t, rewards = recorded_trajectories(policy, data, labelled, temperature=1.0)
            trajectories.append(t)
            outcomes += [bool(r) for r in rewards]
            start_ids += [data.records[i].init_state_id for i in labelled]
    pairs = preference_pairs(outcomes, start_ids, rng)
    if not pairs:
        raise ValueError(f"DPO needs both successes and failures; got {sum(outcomes)} of {len(outcomes)} successes")
    # One flat list of (observations, instruction, bins, reference log-prob, mask) per rollout.
    rollouts = [
        (t.observations[i], t.instructions[i], t.bins[i], (t.old_log_probs[i] * t.token_mask[i]).sum(), t.token_mask[i])
        for t in trajectories
        for i in range(len(t))
    ]

    def sequence_log_prob(index: int) -> torch.Tensor:
        observations, instruction, bins, _, mask = rollouts[index]
        inputs = policy.encode(observations, [instruction] * len(observations))
        log_probs = policy.model.token_log_probs(**inputs, action_bins=bins, temperature=1.0)
        return (log_probs * mask).sum()

    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    policy.model.train()
    history = []
    for epoch in tqdm(range(config.epochs), desc="DPO", unit="epoch"):
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), config.pairs_per_step):
            batch = [pairs[i] for i in order[start : start + config.pairs_per_step]]
            policy_w = torch.stack([sequence_log_prob(w) for w, _ in batch])
            policy_l = torch.stack([sequence_log_prob(lo) for _, lo in batch])
            reference_w = torch.stack([rollouts[w][3] for w, _ in batch])
            reference_l = torch.stack([rollouts[lo][3] for _, lo in batch])
            loss = dpo_loss(policy_w, reference_w, policy_l, reference_l, config.beta)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.model.parameters(), config.grad_clip)
            optimizer.step()
            history.append({"epoch": epoch, "loss": loss.item()})
    policy.model.eval()
    path = policy.save_pretrained(output / "policy")
    summary = {"pairs": len(pairs), "rollouts": len(outcomes), "successes": sum(outcomes), "config": asdict(config)}
    write_json(output / "dpo.json", {**summary, "history": history})
    return path
