"""The loop's imagination checks at tiny sizes: the reward threshold refitted on re-imagined
rollouts, and an inflated imagination gap that warns in the log, the phase result and the report."""

import dataclasses
import json
import logging

import pytest
import torch
from test_reward_model import toy_episode
from test_vla_model import small_policy
from test_world_model import tiny_pipeline

from wmpo_episodes.dataset import write_dataset
from wmpo_jobs.configs import LoopConfig
from wmpo_jobs.loop import _calibrate, _gap, _kept, write_report
from wmpo_worldmodel.calibration import calibrate_threshold
from wmpo_worldmodel.configs import RewardFineTuneConfig
from wmpo_worldmodel.reward_model import VideoRewardModel


@pytest.fixture
def models(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = small_policy().save_pretrained(tmp_path / "policy")
    world_model = tiny_pipeline().save_atomically(tmp_path / "wm")
    write_dataset(tmp_path / "demos", [toy_episode(i, success=True, steps=12) for i in range(3)])
    write_dataset(tmp_path / "failures", [toy_episode(i, success=False, steps=12) for i in range(4)])
    config = LoopConfig(
        task="Lift",
        policy=str(policy),
        world_model=str(world_model),
        demos=str(tmp_path / "demos"),
        max_steps=8,
        sampler_steps=2,
        reward_fine_tune=RewardFineTuneConfig(steps=10, batch_size=4),
        threads=1,
    )
    return config, tmp_path


def one_round_report(folder, gap_before: dict, gap_after: dict, **round_fields) -> str:
    """report.md of a one-round loop (base and round at 0/4 real) with these gaps."""
    round_0 = {
        "round": 0,
        "eval_success_rate": 0.0,
        "eval_success_rate_95ci": [0.0, 0.6],
        "imagined_success_rate": 1.0,
        "imagined_success_per_iteration": [1.0],
        "imagination_gap_before": gap_before,
        "imagination_gap_after": gap_after,
        **round_fields,
    }
    summary = {"task": "Lift", "budget_per_round": 4, "gap_bound": 0.15, "base_success_rate": 0.0}
    write_report(folder, {**summary, "base_success_rate_95ci": [0.0, 0.6], "rounds": [round_0]})
    return (folder / "report.md").read_text()


def test_an_imagination_that_calls_failures_successes_warns_in_the_log_the_phase_and_the_report(models, caplog):
    config, tmp = models
    judge_all_success = VideoRewardModel.tiny()
    judge_all_success.threshold = -1.0  # every imagined rollout is a success
    reward = judge_all_success.save_pretrained(tmp / "reward")
    with caplog.at_level(logging.WARNING):
        gap = _gap(config.policy, config.world_model, str(reward), str(tmp / "failures"), 1.0, config)
    assert (gap["imagined_rate"], gap["real_rate"], gap["episodes"]) == (1.0, 0.0, 4)
    assert gap["exceeded"] and gap["message"].startswith("IMAGINATION GAP +1.00 beyond 0.15")
    assert "IMAGINATION GAP" in caplog.text
    json.dumps(gap)  # a phase result is JSON

    quiet = {**gap, "gap": 0.0, "exceeded": False, "message": "imagined 0.00 vs real 0.00 on 4 start states"}
    report = one_round_report(tmp, gap, quiet, reward_threshold=0.5, reward_model_kept="trained", reimagined_auroc=0.48)
    assert "**Warning: IMAGINATION GAP +1.00 beyond 0.15" in report and "(round 0 before)" in report
    assert "| round 0 before | 4 | 1.00" in report and "+1.00 **beyond bound**" in report
    assert "| round 0 after | 4 | 1.00" in report and "+0.00 |" in report  # within the bound: no flag
    assert "- round 0: trained, threshold 0.500; AUROC of the trained reward model's scores" in report
    assert "outcomes 0.48 (0.5 = chance)" in report
    assert report.count("**Warning:") == 1 and (tmp / "success.png").stat().st_size > 0


@pytest.mark.parametrize("criterion", ["f1", "balanced_accuracy"])
def test_the_threshold_is_refitted_on_re_imagined_rollouts_with_demonstrations_when_none_succeeded(models, criterion):
    config, tmp = models
    config = dataclasses.replace(config, threshold_criterion=criterion)
    reward = VideoRewardModel.tiny().save_pretrained(tmp / "reward")
    folder = tmp / f"round_{criterion}"
    folder.mkdir()
    result = _calibrate(config.world_model, str(reward), str(tmp / "failures"), folder, config)
    calibration = result["calibration"]
    assert calibration["labels"] == [0, 0, 0, 0, 1, 1, 1]  # 4 failed rollouts, then 3 demonstrations
    assert "no real success" in result["fitted_on"] and "3 re-imagined demonstrations" in result["fitted_on"]
    assert calibration["criterion"] == result["fine_tuned_calibration"]["criterion"] == criterion
    refit = calibrate_threshold(calibration["scores"], calibration["labels"], config.calibration_folds, criterion)
    assert result["trained_threshold"] == 0.5 and calibration["informative"] == refit.informative
    # the reward model fine-tuned on the same imagined video, its verdicts judged out of fold
    tuned = result["fine_tuned_calibration"]
    assert tuned["labels"] == calibration["labels"] and tuned["scores"] != calibration["scores"]
    informative = [
        (c["cross_validated_accuracy"], name)
        for c, name in ((calibration, "refitted threshold"), (tuned, "fine-tuned"))
        if c["informative"]
    ]
    if not informative:  # no better than chance: the trained model and threshold stay
        assert (result["kept"], result["threshold"]) == ("trained", 0.5)
    else:
        assert result["kept"] == max(informative, key=lambda pair: pair[0])[1]
        assert result["threshold"] == (
            refit.threshold if result["kept"] == "refitted threshold" else tuned["threshold"]
        )
    assert VideoRewardModel.from_pretrained(result["reward_model"]).threshold == result["threshold"]
    assert VideoRewardModel.from_pretrained(reward).threshold == 0.5  # the trained checkpoint is untouched
    assert _kept(result) == result["kept"]
    # a round recorded before fine-tuning existed: what it kept shows in its threshold
    assert _kept({"threshold": 0.3, "trained_threshold": 0.5}) == "refitted threshold"
    assert _kept({"threshold": 0.5, "trained_threshold": 0.5}) == "trained"


def test_the_report_takes_what_the_policy_before_had_on_the_held_out_states_out_of_the_gap_after(tmp_path):
    """Before GRPO, greedy on the held-out states, the policy imagined 0.75 (real 0.50); after, 1.00
    (real 0.50): the gap after (+0.50) is half the policy's before it; GRPO's own change is +0.25
    imagined against +0.00 real."""
    import numpy as np

    from wmpo_jobs.imagination_gap import gap_from_counts

    def gap(imagined: int, real: int) -> dict:  # as the loop's phase records it
        measured = gap_from_counts(np.arange(4) < imagined, np.arange(4) < real, bound=0.15)
        return {**measured.to_dict(), "message": measured.warning()}

    report = one_round_report(
        tmp_path, gap(2, 2), gap(4, 2), imagination_gap_before_held_out=gap(3, 2), reward_threshold=0.5
    )
    rows = [line for line in report.splitlines() if line.startswith(("| round 0 before", "| round 0 after"))]
    assert [row.split(" | ")[0] for row in rows] == [
        "| round 0 before",
        "| round 0 before, held-out states, greedy",
        "| round 0 after",
    ]
    assert "- round 0: GRPO changed imagined success by +0.25 and real success by +0.00" in report


def test_the_gap_before_grpo_is_judged_out_of_fold_by_the_saved_fold_models(models):
    """Episode i is judged by the model of its fold, not by the kept judge: with a fold model that
    calls everything a success (fold 0) and one that calls nothing (fold 1), exactly the fold-0
    episodes are imagined successes, whatever the kept judge says."""
    import numpy as np

    from wmpo_worldmodel.calibration import HeldOutJudges

    config, tmp = models
    always, never, kept = VideoRewardModel.tiny(), VideoRewardModel.tiny(), VideoRewardModel.tiny()
    always.threshold, never.threshold, kept.threshold = -1.0, 2.0, -1.0
    saved = HeldOutJudges([always, never], np.array([0, 1, 1, 1])).save(tmp / "reward_folds")
    kept_path = str(kept.save_pretrained(tmp / "kept"))
    gap = _gap(config.policy, config.world_model, kept_path, str(tmp / "failures"), 1.0, config, saved)
    assert (gap["imagined_successes"], gap["episodes"], gap["out_of_fold"]) == (1, 4, True)
    in_sample = _gap(config.policy, config.world_model, kept_path, str(tmp / "failures"), 1.0, config)
    assert (in_sample["imagined_successes"], in_sample["out_of_fold"]) == (4, False)

    report = one_round_report(tmp, gap, in_sample, reward_threshold=-1.0, reward_model_kept="fine-tuned")
    assert "| round 0 before, judged out of fold | 4 | 0.25" in report
    assert "| round 0 after | 4 | 1.00" in report


def test_a_kept_fine_tuned_judge_leaves_its_fold_models_to_judge_the_rollouts_start_states(models, monkeypatch):
    """When the rule keeps the fine-tuned judge (here forced: the refit scores 0 right, the
    fine-tuned model all right), its fold models are saved over the rollouts only (the re-imagined
    demonstrations appended after them trained the fold models, they are not start states), and
    the gap before GRPO uses them; a mismatched fold list is refused."""
    from dataclasses import replace

    import numpy as np

    import wmpo_worldmodel.calibration as calibration
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_jobs.imagination_gap import measure_gap

    config, tmp = models
    fitted = calibration.calibrate_threshold
    calls = []

    def forced(scores, labels, folds, criterion):
        calls.append(fitted(scores, labels, folds, criterion))
        return replace(calls[-1], cross_validated_accuracy=0.0 if len(calls) == 1 else 1.0)

    monkeypatch.setattr(calibration, "calibrate_threshold", forced)
    reward = VideoRewardModel.tiny().save_pretrained(tmp / "reward")
    (tmp / "round_0").mkdir()
    result = _calibrate(config.world_model, str(reward), str(tmp / "failures"), tmp / "round_0", config)
    assert result["kept"] == "fine-tuned" and len(calls) == 2
    saved = result["held_out_judges"]
    assert len(saved["fold"]) == 4 and len(saved["models"]) == config.calibration_folds  # 4 rollouts, not + 3 demos
    assert all((tmp / "round_0" / "reward_folds" / f"fold_{f}" / "config.json").is_file() for f in range(4))
    gap = _gap(config.policy, config.world_model, result["reward_model"], str(tmp / "failures"), 1.0, config, saved)
    assert gap["out_of_fold"] and gap["episodes"] == 4

    judges = calibration.HeldOutJudges.load({**saved, "fold": saved["fold"] + [0]})
    with pytest.raises(ValueError, match="cover 5 episodes"):
        measure_gap(None, None, None, EpisodeDataset(tmp / "failures"), 8, 1.0, judges=judges)
    assert np.array_equal(calibration.HeldOutJudges.load(saved).fold, saved["fold"])


def test_grpo_is_judged_out_of_fold_by_the_fold_models_when_the_fine_tuned_judge_is_kept(models):
    """The kept fine-tuned judge saw the P rollouts' labels, and GRPO imagines from their start
    states: with fold models its rollouts are judged as the gap before is, out of fold. The kept
    judge calls everything a success, the fold models nothing: GRPO sees no success."""
    import numpy as np

    from wmpo_jobs.loop import _run_wmpo
    from wmpo_worldmodel.calibration import HeldOutJudges

    config, tmp = models
    config = dataclasses.replace(config, grpo=dataclasses.replace(config.grpo, group_size=2, start_states=2))
    never, kept = VideoRewardModel.tiny(), VideoRewardModel.tiny()
    never.threshold, kept.threshold = 2.0, -1.0
    saved = HeldOutJudges([never, never], np.array([0, 1, 0, 1])).save(tmp / "reward_folds")
    kept_path = str(kept.save_pretrained(tmp / "kept"))
    out_of_fold = _run_wmpo(config, config.policy, config.world_model, kept_path, str(tmp / "failures"),
                            tmp / "round_0" / "wmpo", saved)  # fmt: skip
    assert out_of_fold["judged_out_of_fold"] and out_of_fold["imagined_success_rate"] == 0.0
    in_sample = _run_wmpo(config, config.policy, config.world_model, kept_path, str(tmp / "failures"),
                          tmp / "round_1" / "wmpo")  # fmt: skip
    assert not in_sample["judged_out_of_fold"] and in_sample["imagined_success_rate"] == 1.0

    gap = _gap(config.policy, config.world_model, kept_path, str(tmp / "failures"), 1.0, config)
    report = one_round_report(tmp, gap, gap, reward_threshold=-1.0, reward_model_kept="fine-tuned",
                              grpo_judged_out_of_fold=True)  # fmt: skip
    assert "(0.5 = chance); GRPO judged out of fold by its fold models" in report
