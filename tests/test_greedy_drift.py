"""Greedy drift (wmpo_trainer.greedy_drift): zero for the recording policy itself, and it sees
an update that moves the arg-max."""

import copy

import numpy as np
import torch

from wmpo_common.actions import ActionStats
from wmpo_episodes.dataset import EpisodeDataset, write_dataset
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_policy.vla.tokenization import build_tokenizer
from wmpo_trainer.greedy_drift import greedy_drift, greedy_flips

torch.set_num_threads(1)
INSTRUCTION = "pick up the red cube"


def small_policy() -> VLAPolicy:
    torch.manual_seed(0)
    config = VLAConfig(
        vision_tower="conv_keypoints",
        vision_config={"image_size": 32, "channels": [8, 16], "num_keypoints": 4, "hidden_size": 16},
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1},
        text_vocab_size=300,
        projector_hidden_size=32,
    )
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (200, 7)))
    return VLAPolicy(VLAForActionPrediction.fresh(config).eval(), build_tokenizer([INSTRUCTION], 300), stats)


def recorded_greedy_episode(policy: VLAPolicy, path, steps: int = 16):
    """A dataset of one episode whose commanded actions are the policy's greedy chunks."""
    frames = np.random.default_rng(1).integers(0, 256, (steps + 1, 32, 32, 3), dtype=np.uint8)
    starts = frames[np.arange(0, steps, 8)]
    actions, _, _ = policy.predict(starts, [INSTRUCTION] * len(starts))
    commanded = actions.reshape(-1, 7)[:steps]
    summary = {"episode_id": "e0", "task": "Lift", "instruction": INSTRUCTION, "outcome": "success"}
    arrays = {"frames": frames, "frame_stamps": np.arange(steps + 1), "actions": commanded, "commanded": commanded}
    write_dataset(path, [({**summary, "success_step": steps, "policy_id": "p"}, arrays)])
    return EpisodeDataset(path), frames[:steps:8]


def test_the_recording_policy_keeps_every_token_and_a_moved_head_flips_some(tmp_path):
    policy = small_policy()
    data, starts = recorded_greedy_episode(policy, tmp_path / "data")
    itself = greedy_drift(policy, policy, data, [0])
    assert itself.kept == 1.0 and itself.chunks_flipped == 0 and abs(itself.mean_ratio - 1) < 1e-6
    assert greedy_flips(policy, policy, starts, [INSTRUCTION] * len(starts)) == 0.0

    moved = copy.deepcopy(policy)
    with torch.no_grad():
        moved.model.language_model.lm_head.weight.add_(torch.randn_like(moved.model.language_model.lm_head.weight))
    drift = greedy_drift(policy, moved, data, [0])
    assert drift.kept < 0.5 and drift.chunks_flipped == drift.chunks == 2 and drift.bins_per_flip > 0
    assert greedy_flips(policy, moved, starts, [INSTRUCTION] * len(starts)) > 0.5


def test_the_deployment_gate_refuses_a_policy_past_its_drift_limit(tmp_path):
    from wmpo_trainer.greedy_drift import deployment_gate

    policy = small_policy()
    data, _ = recorded_greedy_episode(policy, tmp_path / "data")
    assert deployment_gate(policy, policy, data, limit=0.0)["deploy"]
    moved = copy.deepcopy(policy)
    with torch.no_grad():
        moved.model.language_model.lm_head.weight.add_(torch.randn_like(moved.model.language_model.lm_head.weight))
    gate = deployment_gate(policy, moved, data, limit=0.05)
    assert not gate["deploy"] and gate["greedy_flipped"] > 0.05 and "> limit 0.05 on 1 successful" in gate["reason"]


def test_the_deployment_gate_refuses_a_policy_whose_held_out_success_fell():
    """A policy within its drift limit is still refused when its greedy success on the held-out
    states fell below the deployed policy's by more than max_success_drop (the Square round: 0.30
    -> 0.20 at 1.6% drift was deployed); a drop within the tolerance, or a rise, deploys."""
    from wmpo_jobs.loop import success_gate

    drift = {"deploy": True, "greedy_flipped": 0.016, "limit": 0.05, "reason": "greedy tokens flipped 0.0160 <= ..."}
    fell = success_gate(drift, deployed=0.30, new=0.20, max_drop=0.0)
    assert not fell["deploy"] and "success on the held-out states fell 0.30 -> 0.20" in fell["reason"]
    assert (fell["success_deployed"], fell["success_new"], fell["max_success_drop"]) == (0.30, 0.20, 0.0)
    assert success_gate(drift, deployed=0.30, new=0.20, max_drop=0.15)["deploy"]
    assert success_gate(drift, deployed=0.30, new=0.35, max_drop=0.0)["deploy"]
    refused = {**drift, "deploy": False, "reason": "greedy tokens flipped 0.08 > limit 0.05"}
    assert success_gate(refused, deployed=0.30, new=0.40, max_drop=0.0)["reason"] == refused["reason"]
