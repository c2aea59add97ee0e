"""GRPO inside the world model, end to end at tiny sizes: dynamic sampling, updates, resume."""

import json

import numpy as np
import pytest
import torch
from test_reward_model import toy_episode
from test_vla_model import small_policy
from test_world_model import tiny_pipeline

from wmpo_episodes.dataset import write_dataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import GRPOConfig, WMPOConfig
from wmpo_trainer.train_wmpo import train
from wmpo_worldmodel.imagination import imagine
from wmpo_worldmodel.reward_model import VideoRewardModel

torch.set_num_threads(1)


def tiny_setup(tmp_path) -> dict:
    """Checkpoints of a tiny policy, world model and reward model, and a dataset of start frames."""
    policy = small_policy()
    world_model = tiny_pipeline()
    reward = VideoRewardModel.tiny(image_size=16)
    write_dataset(tmp_path / "starts", [toy_episode(i, success=False, steps=8) for i in range(2)])
    # An untrained reward model scores rollouts a little differently: put the threshold at the
    # median of a pilot batch so that groups mix successes and failures.
    starts = np.stack([toy_episode(0, False, steps=8)[1]["frames"][0]] * 8)
    pilot = imagine(
        world_model,
        policy,
        starts,
        ["pick up the red cube"] * 8,
        8,
        1.6,
        reward,
        sampler_steps=2,
        generator=torch.Generator().manual_seed(0),
    )
    reward.threshold = float(np.median([reward.judge(f).scores.max() for f in pilot.frames]))
    paths = {name: str(m.save_pretrained(tmp_path / name)) for name, m in (("policy", policy), ("reward", reward))}
    paths["wm"] = str(world_model.save_atomically(tmp_path / "wm"))
    return paths


def test_wmpo_updates_the_policy_from_imagined_groups_and_resumes(tmp_path):
    paths = tiny_setup(tmp_path)
    config = WMPOConfig(
        policy=paths["policy"],
        world_model=paths["wm"],
        reward_model=paths["reward"],
        starts=[str(tmp_path / "starts")],
        output=str(tmp_path / "wmpo"),
        iterations=2,
        max_steps=8,
        grpo=GRPOConfig(group_size=4, start_states=2, mini_batch=8, micro_batch=4, learning_rate=1e-3),
        sampler_steps=2,
        threads=1,
    )
    checkpoint = train(config)
    assert checkpoint.name == "iter_2"
    history = json.loads((tmp_path / "wmpo" / "history.json").read_text())
    assert [row["iteration"] for row in history] == [1, 2]
    assert all(row["informative_groups"] > 0 and np.isfinite(row["loss"]) for row in history)
    before = VLAPolicy.from_pretrained(paths["policy"]).model.state_dict()
    after = VLAPolicy.from_pretrained(checkpoint).model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)

    config.iterations = 3
    train(config)  # resumes after iteration 2
    history = json.loads((tmp_path / "wmpo" / "history.json").read_text())
    assert [row["iteration"] for row in history] == [1, 2, 3]


def test_keyframe_starts_give_each_group_a_real_mid_episode_context_and_the_steps_it_had_left(tmp_path):
    from wmpo_trainer.train_wmpo import collect
    from wmpo_worldmodel.imagination import start_context
    from wmpo_worldmodel.pipeline import WorldModelPipeline

    paths = tiny_setup(tmp_path)
    policy, world_model = VLAPolicy.from_pretrained(paths["policy"]), WorldModelPipeline.load(paths["wm"])
    reward = VideoRewardModel.from_pretrained(paths["reward"])
    episodes = [toy_episode(i, False, steps=12)[1]["frames"] for i in range(3)]
    config = WMPOConfig(
        policy=paths["policy"],
        world_model=paths["wm"],
        reward_model=paths["reward"],
        starts=[],
        max_steps=16,
        grpo=GRPOConfig(group_size=2, start_states=3, max_sampling_rounds=1),
        real_context_fraction=1.0,
        sampler_steps=1,
    )
    calls = []

    def recording_imagine(world_model, policy, contexts, instructions, max_steps, *args):
        calls.append((contexts, max_steps))
        return imagine(world_model, policy, contexts, instructions, max_steps, *args)

    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    starts = [(frames, "pick up the red cube") for frames in episodes]
    collect(config, policy, world_model, [reward] * 3, starts, rng, generator, recording_imagine)
    (contexts, budgets), nc = calls[0], world_model.unet.config.context_frames
    steps = 16 - budgets
    assert len(contexts) == 6 and steps.max() > 0 and np.all(steps < 12)
    assert np.all(budgets[0::2] == budgets[1::2])  # a group's G rollouts share the start and budget
    np.testing.assert_array_equal(contexts[0::2], contexts[1::2])
    for context, step in zip(contexts, steps, strict=True):  # each is some start episode's keyframe
        assert any(np.array_equal(context, start_context(frames, step, nc)) for frames in episodes)


def test_grpo_masks_the_chunks_after_a_rollouts_success_or_past_its_budget():
    from wmpo_trainer.train_wmpo import imagined_trajectories
    from wmpo_worldmodel.imagination import ImaginedBatch

    batch = ImaginedBatch(
        frames=np.zeros((4, 25, 16, 16, 3), np.uint8),
        actions=np.zeros((4, 24, 7), np.float32),
        bins=torch.zeros(4, 3, 56, dtype=torch.long),
        log_probs=torch.zeros(4, 3, 56),
        instructions=["pick up the red cube"] * 4,
        success=np.array([True, False, True, True]),
        success_frame=np.array([9, -1, 20, 4]),
        budgets=np.array([24, 10, 24, 24]),  # rollout 1 started from a keyframe 14 steps in
    )
    trajectories = imagined_trajectories(batch, group_size=2, horizon=8)
    assert trajectories.token_mask.shape == (4, 3, 56)
    expected = [[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]]  # chunks start at steps 0, 8, 16
    assert trajectories.token_mask[:, :, 0].int().tolist() == expected
    assert trajectories.advantages[0] > 0 > trajectories.advantages[1]
    assert trajectories.advantages[2:].abs().max() == 0  # a group of equal verdicts teaches nothing
    assert trajectories.observations.shape == (4, 3, 16, 16, 3)


def test_ray_workers_imagine_the_same_contract_on_a_local_ray_instance(tmp_path):
    import ray

    from wmpo_trainer.ray_imagination import RayImagination

    paths = tiny_setup(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        workers = RayImagination(2, paths["policy"], paths["wm"])
        policy = VLAPolicy.from_pretrained(paths["policy"])
        starts = np.stack([toy_episode(i, False, steps=8)[1]["frames"][0] for i in range(3)])
        batch = workers(
            None,
            policy,
            starts,
            [f"task {i}" for i in range(3)],
            np.array([8, 3, 16]),  # keyframe starts' budgets; shares [8, 3] and [16] imagine 2 chunks each
            1.6,
            VideoRewardModel.from_pretrained(paths["reward"]),
            "ddim",
            2,
            torch.Generator().manual_seed(0),
        )
        assert batch.frames.shape == (3, 17, 16, 16, 3) and batch.bins.shape == (3, 2, 56)
        assert batch.budgets.tolist() == [8, 3, 16]
        assert batch.instructions == ["task 0", "task 1", "task 2"]  # shares come back in order
        assert batch.success.shape == (3,)
        # The workers use the weights they are sent: the log-probs are the driver policy's.
        inputs = policy.encode(batch.frames[:, 0], batch.instructions)
        expected = policy.model.token_log_probs(**inputs, action_bins=batch.bins[:, 0], temperature=1.6)
        torch.testing.assert_close(batch.log_probs[:, 0], expected, atol=1e-5, rtol=0)
        workers.shutdown()  # frees the 2 CPUs of the local instance for the training run's workers

        config = WMPOConfig(
            policy=paths["policy"],
            world_model=paths["wm"],
            reward_model=paths["reward"],
            starts=[str(tmp_path / "starts")],
            output=str(tmp_path / "wmpo_ray"),
            iterations=1,
            max_steps=8,
            grpo=GRPOConfig(group_size=4, start_states=2, mini_batch=8, micro_batch=4),
            sampler_steps=2,
            ray_workers=2,
            threads=1,
        )
        assert train(config).name == "iter_1"
    finally:
        ray.shutdown()


def test_keyframe_starts_with_a_keypoint_judge_are_refused_by_grpo_and_by_the_gap(tmp_path):
    """The keypoint judge scores against the first frame it is given: GRPO and the imagination gap
    with keyframe starts (real_context_fraction > 0) refuse it before imagining anything."""
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_jobs.imagination_gap import measure_gap
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.reward_model import RewardModelError

    paths = tiny_setup(tmp_path)
    judge = VideoRewardModel.fresh("keypoints", 32, 8).save_pretrained(tmp_path / "keypoints")
    config = WMPOConfig(
        policy=paths["policy"],
        world_model=paths["wm"],
        reward_model=str(judge),
        starts=[str(tmp_path / "starts")],
        output=str(tmp_path / "wmpo"),
        iterations=1,
        max_steps=8,
        grpo=GRPOConfig(group_size=2, start_states=2, max_sampling_rounds=1),
        real_context_fraction=0.5,
        sampler_steps=1,
        threads=1,
    )
    with pytest.raises(RewardModelError, match="keyframe starts"):
        train(config)
    assert not (tmp_path / "wmpo" / "checkpoints").exists()
    policy, world_model = VLAPolicy.from_pretrained(paths["policy"]), WorldModelPipeline.load(paths["wm"])
    starts = EpisodeDataset(tmp_path / "starts")
    with pytest.raises(RewardModelError, match="keyframe starts"):
        measure_gap(policy, world_model, VideoRewardModel.from_pretrained(judge), starts, 8, 1.0,
                    real_context_fraction=0.5)  # fmt: skip


def test_held_out_judges_judge_each_start_states_rollouts_by_its_own_fold_model(tmp_path):
    """With one judge per start state (the fold models of a fine-tuned reward model: start i judged
    by the model not fine-tuned on it), a rollout's verdict is its start's judge's: here start 0's
    calls everything a success and start 1's nothing, so the imagined success rate is the share of
    groups drawn from start 0 and no group is informative."""
    from wmpo_trainer.train_wmpo import collect
    from wmpo_worldmodel.pipeline import WorldModelPipeline

    paths = tiny_setup(tmp_path)
    policy, world_model = VLAPolicy.from_pretrained(paths["policy"]), WorldModelPipeline.load(paths["wm"])
    always, never = VideoRewardModel.tiny(image_size=16), VideoRewardModel.tiny(image_size=16)
    always.threshold, never.threshold = -1.0, 2.0
    config = WMPOConfig(
        policy=paths["policy"],
        world_model=paths["wm"],
        reward_model=paths["reward"],
        starts=[],
        max_steps=8,
        grpo=GRPOConfig(group_size=2, start_states=6, max_sampling_rounds=1),
        sampler_steps=1,
    )
    starts = [(toy_episode(i, False, steps=8)[1]["frames"], "pick up the red cube") for i in range(2)]
    picks = np.random.default_rng(0).integers(0, 2, 6)
    assert 0 < np.mean(picks == 0) < 1  # the seed draws from both starts
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    batch, counts = collect(config, policy, world_model, [always, never], starts, rng, generator)
    assert counts["imagined_success_rate"] == pytest.approx(np.mean(picks == 0))
    assert batch is None and counts["informative_groups"] == 0


def test_wmpo_with_held_out_judges_refuses_starts_the_folds_do_not_cover(tmp_path):
    from wmpo_worldmodel.calibration import HeldOutJudges

    paths = tiny_setup(tmp_path)
    saved = HeldOutJudges([VideoRewardModel.tiny(image_size=16)] * 2, np.array([0, 1, 1])).save(tmp_path / "folds")
    judges_file = tmp_path / "held_out_judges.json"
    judges_file.write_text(json.dumps(saved))
    config = WMPOConfig(
        policy=paths["policy"],
        world_model=paths["wm"],
        reward_model=paths["reward"],
        starts=[str(tmp_path / "starts")],  # 2 episodes
        output=str(tmp_path / "wmpo"),
        held_out_judges=str(judges_file),
        iterations=1,
        max_steps=8,
        sampler_steps=1,
        threads=1,
    )
    with pytest.raises(ValueError, match="cover 3 start episodes"):
        train(config)
    assert not (tmp_path / "wmpo").exists()
