"""Model-free baselines: trajectories from recorded rollouts, DPO pairs and loss."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_vla_model import small_policy

from wmpo_episodes.dataset import EpisodeDataset, write_dataset
from wmpo_trainer.configs import DPOConfig
from wmpo_trainer.dpo import dpo_loss, preference_pairs, train
from wmpo_trainer.real_trajectories import recorded_trajectories

torch.set_num_threads(1)


def rollout(policy, index, success, steps, init_state_id, rng):
    """An episode 'recorded' with the policy: its sampled chunks, cut where the episode ended."""
    frames = rng.integers(0, 256, (steps + 1, 64, 64, 3), dtype=np.uint8)
    commanded = []
    for start in range(0, steps, 8):
        actions, _, _ = policy.predict(
            frames[start][None], ["pick up the red cube"], 1.0, torch.Generator().manual_seed(index)
        )
        commanded.append(actions[0])
    commanded = np.concatenate(commanded)[:steps]
    summary = {
        "episode_id": f"r{index}",
        "task": "Lift",
        "instruction": "pick up the red cube",
        "outcome": "success" if success else "failure",
        "success_step": steps if success else -1,
        "policy_id": "vla",
        "init_state_id": init_state_id,
    }
    return summary, {
        "frames": frames,
        "frame_stamps": np.arange(steps + 1),
        "actions": commanded,
        "commanded": commanded,
    }


@pytest.fixture
def rollouts(tmp_path):
    policy = small_policy()
    rng = np.random.default_rng(0)
    specs = [(True, 12, 1), (False, 16, 1), (True, 9, 2), (False, 16, 2)]
    write_dataset(tmp_path / "rollouts", [rollout(policy, i, *spec, rng) for i, spec in enumerate(specs)])
    return policy, EpisodeDataset(tmp_path / "rollouts")


def test_recorded_rollouts_become_trajectories_with_their_sampling_log_probs(rollouts):
    policy, data = rollouts
    trajectories, rewards = recorded_trajectories(policy, data, range(4), temperature=1.0)
    np.testing.assert_array_equal(rewards, [1, 0, 1, 0])
    assert trajectories.bins.shape == (4, 2, 56) and trajectories.observations.shape == (4, 2, 64, 64, 3)
    # Episode 0 ended after 12 steps: chunk 1 has 4 executed steps, 28 tokens.
    assert trajectories.token_mask[0, 1].sum() == 4 * 7 and trajectories.token_mask[1].all()
    assert trajectories.token_mask[2, 1].sum() == 1 * 7
    # The bins re-derived from the commanded actions are the ones the policy sampled.
    _, bins, log_probs = policy.predict(
        data.episode(1)["frames"][0][None], ["pick up the red cube"], 1.0, torch.Generator().manual_seed(1)
    )
    assert torch.equal(trajectories.bins[1, 0], bins[0])
    torch.testing.assert_close(trajectories.old_log_probs[1, 0], log_probs[0], atol=1e-5, rtol=0)


def test_dpo_pairs_by_start_state_and_loss_by_hand():
    rng = np.random.default_rng(0)
    assert preference_pairs([True, False, True, False], [1, 1, 2, 2], rng) == [(0, 1), (2, 3)]
    assert preference_pairs([True, True], [1, 2], rng) == []
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-3.0]), torch.tensor([-2.5]), beta=0.5)
    # beta * ((-1 + 2) - (-3 + 2.5)) = 0.5 * 1.5 = 0.75
    assert loss.item() == pytest.approx(-F.logsigmoid(torch.tensor(0.75)).item())


def test_dpo_raises_the_winners_likelihood_relative_to_the_losers(rollouts, tmp_path):
    policy, data = rollouts
    checkpoint = policy.save_pretrained(tmp_path / "policy")
    path = train(
        DPOConfig(
            policy=str(checkpoint),
            rollouts=[str(data.path)],
            output=str(tmp_path / "dpo"),
            learning_rate=1e-3,
            epochs=5,
            pairs_per_step=2,
            threads=1,
        )
    )
    report = json.loads((tmp_path / "dpo" / "dpo.json").read_text())
    assert report["pairs"] == 2 and report["history"][-1]["loss"] < report["history"][0]["loss"]
    from wmpo_policy.vla.policy import VLAPolicy

    before, _ = recorded_trajectories(policy, data, range(4), 1.0)
    after, _ = recorded_trajectories(VLAPolicy.from_pretrained(path), data, range(4), 1.0)
    margin = lambda t: ((t.old_log_probs * t.token_mask).sum((1, 2)) * torch.tensor([1, -1, 1, -1])).sum()  # noqa: E731
    assert margin(after) > margin(before)
