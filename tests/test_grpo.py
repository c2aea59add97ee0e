"""GRPO pieces against hand-computed values."""

import numpy as np
import pytest
import torch

from wmpo_trainer.grpo import chunk_mask, clipped_policy_loss, group_advantages, informative_groups


def test_group_advantages_normalise_within_each_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    advantages = group_advantages(rewards)
    # mean 0.25; unbiased std sqrt(((0.75)^2 + 3 * 0.25^2) / 3) = 0.5
    torch.testing.assert_close(advantages[0], torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-5, rtol=0)
    torch.testing.assert_close(advantages[1], torch.zeros(4))


def test_dynamic_sampling_drops_groups_without_signal():
    rewards = np.array([[1, 1, 1], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(informative_groups(rewards), [False, False, True])


def test_chunks_after_the_success_frame_are_masked():
    mask = chunk_mask(torch.tensor([-1, 8, 9, 0]), num_chunks=3, chunk_size=8)
    expected = [[True, True, True], [True, False, False], [True, True, False], [False, False, False]]
    assert mask.tolist() == expected


def test_clipped_loss_matches_hand_computation():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    # ratios: trajectory 0: 1.5, 1.0, 0.5 ; trajectory 1: 1.5, 0.7, (masked)
    new = torch.log(torch.tensor([[0.75, 0.5, 0.25], [0.75, 0.35, 0.9]]))
    advantages = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    loss, stats = clipped_policy_loss(new, old, advantages, mask, 0.2, 0.28)
    # A = 2: min(1.5 * 2, 1.28 * 2) = 2.56; min(2, 2) = 2; min(0.5 * 2, 0.8 * 2) = 1 -> -(5.56) / 3
    # A = -1: min(-1.5, -1.28) = -1.5; min(-0.7, -0.8) = -0.8 -> -(-2.3) / 2
    expected = (-(2.56 + 2.0 + 1.0) / 3 + (1.5 + 0.8) / 2) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert stats["clip_fraction"] == pytest.approx(2 / 5)  # the clipped term wins for 1.5 (A>0) and 0.7 (A<0)


def test_loss_gradient_flows_only_through_unclipped_valid_tokens():
    old = torch.zeros(1, 3)
    new = torch.tensor([[0.5, 0.0, 0.1]], requires_grad=True)  # ratios e^0.5 (clipped), 1, e^0.1
    loss, _ = clipped_policy_loss(new, old, torch.tensor([1.0]), torch.tensor([[True, True, False]]))
    loss.backward()
    torch.testing.assert_close(new.grad, torch.tensor([[0.0, -0.5, 0.0]]))
