"""The imagination gap (wmpo_jobs.imagination_gap): rates, intervals and the loud warning."""

import logging

import numpy as np
import pytest

from wmpo_jobs.imagination_gap import gap_from_counts


def test_an_optimistic_imagination_beyond_the_bound_warns(caplog):
    imagined = np.array([True] * 9 + [False] * 1)  # 0.9 imagined
    real = np.array([True] * 3 + [False] * 7)  # 0.3 real, the same start states
    with caplog.at_level(logging.WARNING):
        gap = gap_from_counts(imagined, real, bound=0.15)
    assert gap.gap == pytest.approx(0.6) and gap.exceeded and gap.imagined_successes == 9
    assert gap.real_95ci[0] < 0.3 < gap.real_95ci[1]
    assert "IMAGINATION GAP +0.60 beyond 0.15" in caplog.text and "optimistic" in gap.warning()


def test_a_gap_within_the_bound_is_quiet(caplog):
    with caplog.at_level(logging.WARNING):
        gap = gap_from_counts([True, False, False, False], [False, True, False, False], bound=0.15)
    assert gap.gap == 0.0 and not gap.exceeded and gap.warning() == "" and caplog.text == ""
    assert gap.to_dict()["exceeded"] is False


def test_outcomes_of_different_states_are_refused():
    with pytest.raises(ValueError, match="same states"):
        gap_from_counts([True, False], [True])


def test_keyframe_starts_imagine_from_real_mid_episode_context_with_the_steps_left(tmp_path, monkeypatch):
    """With real_context_fraction 1 every rollout starts from a real keyframe's context frames and
    has max_steps - step steps; with 0 from the first frame and the whole budget; seeded."""
    import torch
    from test_reward_model import toy_episode
    from test_vla_model import small_policy
    from test_world_model import tiny_pipeline

    import wmpo_worldmodel.imagination as imagination
    from wmpo_episodes.dataset import EpisodeDataset, write_dataset
    from wmpo_jobs.imagination_gap import measure_gap
    from wmpo_worldmodel.imagination import start_context
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    write_dataset(tmp_path / "real", [toy_episode(i, success=i % 2 == 0, steps=12) for i in range(4)])
    real = EpisodeDataset(tmp_path / "real")
    policy, world_model, reward = small_policy(), tiny_pipeline(), VideoRewardModel.tiny()
    calls = []

    def recording_imagine(world_model, policy, contexts, instructions, max_steps, *args, **kwargs):
        calls.append((np.array(contexts), np.array(max_steps)))
        return imagine(world_model, policy, contexts, instructions, max_steps, *args, **kwargs)

    imagine = imagination.imagine
    monkeypatch.setattr(imagination, "imagine", recording_imagine)

    def starts(fraction, seed=0):
        calls.clear()
        gap = measure_gap(policy, world_model, reward, real, 16, 1.0, sampler_steps=1, seed=seed,
                          real_context_fraction=fraction)  # fmt: skip
        assert gap.real_context_fraction == fraction and gap.episodes == 4
        return np.concatenate([c for c, _ in calls]), np.concatenate([b for _, b in calls])

    nc = world_model.unet.config.context_frames
    contexts, budgets = starts(1.0)
    steps = 16 - budgets
    assert steps.max() > 0 and np.all(steps < 12)  # keyframes before each episode's last frame
    for i, step in enumerate(steps):
        np.testing.assert_array_equal(contexts[i], start_context(real.episode(i)["frames"], step, nc))
    again, again_budgets = starts(1.0)
    np.testing.assert_array_equal(again, contexts)
    np.testing.assert_array_equal(again_budgets, budgets)
    first, first_budgets = starts(0.0)
    assert np.all(first_budgets == 16)
    for i in range(4):
        np.testing.assert_array_equal(first[i], start_context(real.episode(i)["frames"], 0, nc))


def test_a_keyframe_share_outside_zero_to_one_is_refused():
    from wmpo_jobs.configs import LoopConfig
    from wmpo_trainer.configs import WMPOConfig

    with pytest.raises(ValueError, match="real_context_fraction is a share in"):
        LoopConfig(task="Lift", policy="p", world_model="w", demos="d", real_context_fraction=1.5)
    with pytest.raises(ValueError, match="real_context_fraction is a share in"):
        WMPOConfig(policy="p", world_model="w", reward_model="r", starts=[], real_context_fraction=-0.1)


def test_the_gap_records_each_rollouts_peak_score_that_its_verdict_came_from(tmp_path):
    """imagined_scores[i] is the judge's peak window score of start state i's imagined rollout:
    a threshold moved between two recorded scores moves exactly those verdicts."""
    import torch
    from test_reward_model import toy_episode
    from test_vla_model import small_policy
    from test_world_model import tiny_pipeline

    from wmpo_episodes.dataset import EpisodeDataset, write_dataset
    from wmpo_jobs.imagination_gap import measure_gap
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    write_dataset(tmp_path / "real", [toy_episode(i, success=i % 2 == 0, steps=12) for i in range(4)])
    real = EpisodeDataset(tmp_path / "real")
    policy, world_model, reward = small_policy(), tiny_pipeline(), VideoRewardModel.tiny()

    def gap_at(threshold):
        reward.threshold = threshold
        return measure_gap(policy, world_model, reward, real, 16, 1.0, sampler_steps=1, seed=0)

    scores = np.array(gap_at(0.5).imagined_scores)
    assert scores.shape == (4,) and len(set(scores.tolist())) == 4
    for threshold in np.sort(scores):
        gap = gap_at(float(threshold))
        assert gap.imagined_scores == scores.tolist() and gap.imagined_successes == int(np.sum(scores >= threshold))
