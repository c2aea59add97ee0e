"""The imagination API: a policy acting inside the world model, judged by the reward model."""

import numpy as np
import pytest
import torch
from test_reward_model import toy_episode
from test_vla_model import INSTRUCTIONS, small_policy
from test_world_model import tiny_pipeline

from wmpo_worldmodel.imagination import imagine, start_context
from wmpo_worldmodel.reward_model import VideoRewardModel

torch.set_num_threads(1)


def run(seed, contexts, reward=None, max_steps=20):
    return imagine(
        tiny_pipeline(),
        small_policy(),
        contexts,
        [INSTRUCTIONS[0]] * len(contexts),
        max_steps,
        temperature=1.6,
        reward_model=reward,
        sampler_steps=2,
        generator=torch.Generator().manual_seed(seed),
    )


def test_imagined_batches_have_the_trainer_contract_and_their_log_probs():
    starts = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    reward = VideoRewardModel.tiny(image_size=16)
    batch = run(0, starts, reward)
    assert batch.num_chunks == 3  # ceil(20 / 8)
    assert batch.frames.shape == (3, 1 + 24, 16, 16, 3) and batch.frames.dtype == np.uint8
    assert batch.actions.shape == (3, 24, 7) and batch.bins.shape == batch.log_probs.shape == (3, 3, 56)
    assert batch.success.shape == batch.success_frame.shape == (3,)
    # The log-probs are the policy's, on the frame it saw before each chunk, at the temperature.
    policy = small_policy()
    for c in range(3):
        inputs = policy.encode(batch.frames[:, 8 * c], [INSTRUCTIONS[0]] * 3)
        expected = policy.model.token_log_probs(**inputs, action_bins=batch.bins[:, c], temperature=1.6)
        torch.testing.assert_close(batch.log_probs[:, c], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        batch.actions[:, :8], policy.bins_to_actions(batch.bins[:, 0]).reshape(3, 8, 7), rtol=1e-6
    )


def test_imagination_is_deterministic_and_starts_from_real_context():
    frames = toy_episode(0, True)[1]["frames"]
    context = start_context(frames, 10, 4)
    np.testing.assert_array_equal(context, frames[7:11])
    np.testing.assert_array_equal(start_context(frames, 1, 4), frames[[0, 0, 0, 1]])
    a, b, c = run(1, context[None], max_steps=8), run(1, context[None], max_steps=8), run(2, context[None], max_steps=8)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert torch.equal(a.bins, b.bins) and not torch.equal(a.bins, c.bins)


def test_a_success_seen_only_past_the_step_budget_is_a_failure_and_chunks_after_a_success_are_masked():
    """Imagination runs whole chunks (24 frames for a 20-step budget); the verdict may only use the
    frames within the budget, and GRPO masks the chunks that start at or after the success frame."""
    starts = np.random.default_rng(3).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    reward = VideoRewardModel.tiny(image_size=16)
    frames = run(0, starts, max_steps=20).frames  # (6, 25, ...): 20 steps in budget, 4 beyond
    scores = [reward.judge(episode).scores for episode in frames]  # window w ends at frame w + 3
    within = [s[: 20 + 1 - reward.num_frames + 1].max() for s in scores]  # windows ending at frame <= 20
    late = int(np.argmax([s.max() - w for s, w in zip(scores, within, strict=True)]))
    assert scores[late].max() > within[late], "no rollout scores higher past its budget; pick other starts"
    reward.threshold = (within[late] + scores[late].max()) / 2  # only past the budget does it succeed
    batch = run(0, starts, reward, max_steps=20)
    np.testing.assert_array_equal(batch.frames, frames)
    assert not batch.success[late] and batch.success_frame[late] == -1
    assert np.all(batch.success_frame <= 20)
    for b in np.flatnonzero(batch.success):  # every verdict is the judge's on the frames within budget
        assert batch.success_frame[b] == reward.judge(frames[b, :21]).success_frame

    from wmpo_trainer.grpo import chunk_mask

    reward.threshold = float(min(s.min() for s in scores)) - 1.0  # every rollout succeeds at once
    judged = run(0, starts, reward, max_steps=20)
    mask = chunk_mask(torch.as_tensor(judged.success_frame), judged.num_chunks, 8)
    assert np.all(judged.success_frame == reward.num_frames - 1)  # the first full window, frame 3
    assert mask[:, 0].all() and not mask[:, 1:].any()  # chunk 0 (frames 0-7) counts, later ones are masked


def test_each_rollout_is_judged_within_its_own_budget_and_the_chunks_past_it_are_masked():
    """Keyframe starts give each rollout the steps its real episode had left: a batch imagines
    enough chunks for the largest budget, judges rollout b on its first budget_b + 1 frames only,
    and GRPO masks the chunks that start at or after a rollout's budget."""
    from wmpo_trainer.grpo import chunk_mask

    starts = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    reward = VideoRewardModel.tiny(image_size=16)
    budgets = np.array([10, 20])
    frames = run(0, starts, max_steps=budgets).frames
    assert frames.shape[1] == 1 + 24  # ceil(20 / 8) chunks for both
    scores = reward.judge(frames[0]).scores
    within = scores[: 10 + 1 - reward.num_frames + 1].max()  # windows ending at frame <= 10
    assert scores.max() > within, "rollout 0 scores no higher past its budget; pick other starts"
    reward.threshold = (within + scores.max()) / 2  # rollout 0 succeeds only past its own budget
    batch = run(0, starts, reward, max_steps=budgets)
    np.testing.assert_array_equal(batch.budgets, budgets)
    assert not batch.success[0] and batch.success_frame[0] == -1
    assert batch.success_frame[1] == reward.judge(frames[1, :21]).success_frame

    mask = chunk_mask(torch.tensor([-1, -1]), batch.num_chunks, 8, torch.as_tensor(budgets))
    assert mask.tolist() == [[True, True, False], [True, True, True]]  # chunk 2 starts at step 16 >= 10

    with pytest.raises(ValueError, match="at least 1"):
        run(0, starts, max_steps=np.array([0, 20]))
