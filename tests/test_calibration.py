"""The reward threshold fitted on re-imagined rollouts (wmpo_worldmodel.calibration)."""

from dataclasses import replace

import numpy as np
import pytest

from wmpo_worldmodel.calibration import calibrate_threshold, cross_validated


def brute_force_f1(scores, labels, threshold):
    verdicts = scores >= threshold
    tp = np.sum(verdicts & (labels == 1))
    return 2 * tp / max(1, 2 * tp + np.sum(verdicts & (labels == 0)) + np.sum(~verdicts & (labels == 1)))


def test_the_threshold_is_f1_optimal_and_counts_imagined_near_misses_as_false_positives():
    # Real successes score 0.9 and 0.8; near misses the world model made look good score 0.7 and 0.75;
    # clear failures 0.1-0.3. The F1-optimal threshold lies above the near misses.
    scores = np.array([0.9, 0.8, 0.75, 0.7, 0.3, 0.2, 0.1, 0.15])
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    result = calibrate_threshold(scores, labels, 4, "f1")
    assert 0.75 < result.threshold <= 0.8 and result.f1 == 1.0 and result.judged_successes == 2
    best = max(brute_force_f1(scores, labels, t) for t in np.linspace(0, 1, 1001))
    assert brute_force_f1(scores, labels, result.threshold) == best
    # a threshold at the old 0.5 would have called four successes
    assert np.sum(scores >= 0.5) == 4


def test_cross_validation_judges_each_fold_with_the_other_folds_threshold():
    """Folds (i % 3): {0.9 success, 0.7 failure}, {0.1 failure, 0.3 success}, {0.6 success,
    0.2 failure}. The other folds' thresholds: about 0.3 (calls 0.9 and 0.7), about 0.4 (misses
    0.3), about 0.25 (calls 0.6, not 0.2): TP 2, FP 1, FN 1, TN 2."""
    scores = np.array([0.9, 0.1, 0.6, 0.7, 0.3, 0.2])
    labels = np.array([1, 0, 1, 0, 1, 0])
    f1, accuracy = cross_validated(scores, labels, 3, "f1")
    assert f1 == pytest.approx(2 / 3) and accuracy == pytest.approx(4 / 6)
    result = calibrate_threshold(scores, labels, 3, "f1")
    assert result.f1 == pytest.approx(6 / 7) and result.cross_validated_f1 == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        calibrate_threshold([0.5], [1], 4, "f1")


def test_re_imagination_starts_from_the_real_first_frame_under_the_recorded_actions(tmp_path):
    """Changing frames after the first changes nothing; changing the recorded actions changes
    the imagined video (and so its score)."""
    import torch
    from test_reward_model import toy_episode
    from test_world_model import tiny_pipeline

    from wmpo_episodes.dataset import EpisodeDataset, write_dataset
    from wmpo_worldmodel.calibration import peak_scores, reimagine
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(1)
    summary, arrays = toy_episode(0, success=True, steps=8)
    later_frames = {**arrays, "frames": np.concatenate([arrays["frames"][:1], 255 - arrays["frames"][1:]])}
    other_actions = {**arrays, "actions": np.full_like(arrays["actions"], 0.9)}
    for name, variant in (("same", arrays), ("later", later_frames), ("actions", other_actions)):
        write_dataset(tmp_path / name, [(summary, variant)])
    reward = VideoRewardModel.tiny(image_size=16)

    def score(name):
        torch.manual_seed(0)
        videos = reimagine(tiny_pipeline(), EpisodeDataset(tmp_path / name), [0], num_inference_steps=2)
        scores, labels = peak_scores(reward, videos)
        assert labels == [1]
        return scores[0]

    assert score("same") == score("later")
    assert score("same") != score("actions")


def test_a_refit_that_does_not_beat_the_majority_outcome_is_not_informative():
    # make demo's round 0 (docs/results/imagination_gap.md): 9 of 10 re-imagined real successes
    # score about 0.002 and 2 of 6 failures score above 0.9; F1 then picks "everything succeeds".
    scores = np.array([0.002, 0.002, 0.004, 0.002, 0.002, 0.003, 0.002, 0.983, 0.002, 0.002])
    scores = np.concatenate([scores, [0.907, 0.002, 0.005, 0.005, 0.002, 0.971]])
    labels = np.array([1] * 10 + [0] * 6)
    degenerate = calibrate_threshold(scores, labels, 4, "f1")
    assert degenerate.judged_successes == 16 and not degenerate.informative
    assert degenerate.to_dict()["informative"] is False
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0] * 2)
    perfect = calibrate_threshold(np.where(labels == 1, 0.9, 0.1), labels, 4, "f1")
    assert perfect.cross_validated_accuracy == 1.0 and perfect.informative  # 16 of 16 against 0.75: p = 0.01
    too_few = calibrate_threshold(np.where(labels[:8] == 1, 0.9, 0.1), labels[:8], 4, "f1")
    assert too_few.cross_validated_accuracy == 1.0 and not too_few.informative  # 8 of 8 against 0.75: p = 0.10


def test_one_more_right_verdict_than_the_majority_outcome_is_chance():
    # the sixth run's refit (docs/results/imagination_gap.md): 20 of 32 right against a majority of
    # 19 of 32 (AUROC 0.43) was kept by "beats the majority"; by the binomial test it is chance
    from wmpo_worldmodel.calibration import Calibration

    def judged(right: int) -> Calibration:
        return Calibration(0.1, "f1", 0.8, 0.75, right / 32, 0.43, 4, 32, 19, 30, [], [])

    assert judged(20).majority_p_value > 0.3 and not judged(20).informative
    assert judged(25).majority_p_value < 0.05 and judged(25).informative


def test_fine_tuning_on_imagined_video_teaches_the_real_outcome_judged_out_of_fold(tmp_path):
    """Imagined near misses (the world model turns the square yellow-green at the end, where the
    real episode failed) against imagined successes (green): a model fine-tuned on the other fold's
    videos, labelled by the REAL outcome, scores every held-out success above every held-out near
    miss; the reward model it started from is unchanged. With the labels swapped it learns the
    opposite, so the real labels are what it learns."""
    import torch
    from test_reward_model import SIZE, toy_episode

    from wmpo_episodes.dataset import EpisodeDataset, write_dataset
    from wmpo_worldmodel.calibration import fold_models, out_of_fold_scores, stratified_folds
    from wmpo_worldmodel.configs import RewardFineTuneConfig
    from wmpo_worldmodel.fidelity import auroc
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(1)
    episodes = []
    for i in range(8):
        summary, arrays = toy_episode(i, success=i % 2 == 0)
        if i % 2:  # the near miss, as imagined: the square lights up, yellow-green
            frames = toy_episode(i, success=True)[1]["frames"].copy()
            frames[frames[..., 1] == 220] = (200, 220, 40)
            arrays = {**arrays, "frames": frames}
        episodes.append((summary, arrays))
    write_dataset(tmp_path / "d", episodes)
    data = EpisodeDataset(tmp_path / "d")
    videos = [(data.episode(i)["frames"], data.records[i]) for i in range(8)]
    labels = np.array([record.outcome == "success" for _, record in videos])
    torch.manual_seed(0)
    reward = VideoRewardModel.tiny(image_size=SIZE)
    before = {k: v.clone() for k, v in reward.model.state_dict().items()}
    tuning = RewardFineTuneConfig(steps=60, batch_size=8, learning_rate=3e-4)

    fold = stratified_folds(labels, 2)
    assert sorted(labels[fold == 0]) == sorted(labels[fold == 1]) == [False, False, True, True]
    scores = out_of_fold_scores(fold_models(reward, videos, fold, tuning), videos, fold)
    assert auroc(scores, labels) == 1.0, scores
    assert all(torch.equal(before[k], v) for k, v in reward.model.state_dict().items())

    swapped = []
    for frames, record in videos:
        outcome = "failure" if record.outcome == "success" else "success"
        swapped.append((frames, replace(record, outcome=outcome, success_step=record.num_steps)))
    swapped_scores = out_of_fold_scores(fold_models(reward, swapped, fold, tuning), swapped, fold)
    assert auroc(swapped_scores, labels) == 0.0


def test_each_held_out_judge_takes_the_threshold_swept_on_the_other_folds_only(tmp_path):
    """Fold 0's judge is thresholded on episodes 1 and 3, fold 1's on 0 and 2: swept on all four
    the F1-optimal threshold would be 0.6 (which fold 1's own split, 0.9 vs 0.7, rules out). The
    judges round-trip through their saved form with their thresholds and folds."""
    from wmpo_worldmodel.calibration import HeldOutJudges
    from wmpo_worldmodel.reward_model import VideoRewardModel

    scores, labels, fold = [0.9, 0.6, 0.7, 0.2], [1, 1, 0, 0], [0, 1, 0, 1]
    judges = HeldOutJudges.fitted([VideoRewardModel.tiny(), VideoRewardModel.tiny()], scores, labels, fold, "f1")
    assert 0.2 < judges.models[0].threshold <= 0.6 and 0.7 < judges.models[1].threshold <= 0.9
    loaded = HeldOutJudges.load(judges.save(tmp_path / "folds"))
    assert [m.threshold for m in loaded.models] == [m.threshold for m in judges.models]
    assert loaded.fold.tolist() == fold
