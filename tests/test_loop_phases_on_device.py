"""The loop's phases that need no simulator, one round at tiny sizes on a CUDA device: alignment,
reward training, the threshold phase with the fine-tuned judge kept (its fold models), the gap
judged out of fold, GRPO judged out of fold, the drift gate. Skipped without a GPU (CI has none);
run it on a GPU machine: ``python -m pytest tests/test_loop_phases_on_device.py``."""

from dataclasses import replace

import pytest
import torch
from test_reward_model import toy_episode
from test_vla_model import small_policy
from test_world_model import tiny_pipeline

from wmpo_episodes.dataset import write_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_one_rounds_phases_run_on_the_gpu(tmp_path, monkeypatch):
    import wmpo_worldmodel.calibration as calibration
    from wmpo_jobs.configs import LoopConfig
    from wmpo_jobs.loop import _calibrate, _drift_gate, _gap, _run_wmpo
    from wmpo_trainer.configs import GRPOConfig
    from wmpo_worldmodel import train_reward, train_world_model
    from wmpo_worldmodel.configs import RewardConfig, RewardFineTuneConfig, WMConfig

    torch.manual_seed(0)
    policy = str(small_policy().save_pretrained(tmp_path / "policy"))
    world_model = str(tiny_pipeline().save_atomically(tmp_path / "wm"))
    write_dataset(tmp_path / "demos", [toy_episode(i, True, steps=12) for i in range(4)])
    write_dataset(tmp_path / "rollouts", [toy_episode(i, i % 2 == 0, steps=12) for i in range(8)])
    demos, rollouts = str(tmp_path / "demos"), str(tmp_path / "rollouts")
    config = LoopConfig(
        task="Lift",
        policy=policy,
        world_model=world_model,
        demos=demos,
        max_steps=8,
        sampler_steps=2,
        reward_fine_tune=RewardFineTuneConfig(steps=10, batch_size=4),
        wmpo_iterations=1,
        grpo=replace(GRPOConfig(), group_size=2, start_states=2),
        device="cuda",
    )
    align = WMConfig(datasets=[rollouts], output=str(tmp_path / "align"), steps=10, init_checkpoint=world_model)
    aligned = str(train_world_model.train(replace(align, device="cuda")))
    reward = RewardConfig(datasets=[demos, rollouts], output=str(tmp_path / "reward"), steps=10, device="cuda")
    trained = str(train_reward.train(reward))

    fitted = calibration.calibrate_threshold  # the fine-tuned judge kept, whatever the toy scores say
    calls = []

    def forced(scores, labels, folds, criterion):
        calls.append(fitted(scores, labels, folds, criterion))
        return replace(calls[-1], cross_validated_accuracy=0.0 if len(calls) == 1 else 1.0)

    monkeypatch.setattr(calibration, "calibrate_threshold", forced)
    (tmp_path / "round").mkdir()
    calibrated = _calibrate(aligned, trained, rollouts, tmp_path / "round", config)
    assert calibrated["kept"] == "fine-tuned" and len(calibrated["held_out_judges"]["fold"]) == 8
    judges = calibrated["held_out_judges"]
    gap = _gap(policy, aligned, calibrated["reward_model"], rollouts, 1.0, config, judges)
    assert gap["episodes"] == 8 and gap["out_of_fold"]
    improved = _run_wmpo(config, policy, aligned, calibrated["reward_model"], rollouts, tmp_path / "wmpo", judges)
    assert improved["judged_out_of_fold"] and 0.0 <= improved["imagined_success_rate"] <= 1.0
    gate = _drift_gate(policy, improved["policy"], rollouts, config)
    assert gate["episodes"] == 4 and "deploy" in gate
