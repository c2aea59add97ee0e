"""The fidelity report: per-horizon PSNR/SSIM, outcome agreement, files people look at."""

import json

import numpy as np
import pytest
import torch
from test_reward_model import toy_episode
from test_world_model import tiny_pipeline

from wmpo_bringup import cli
from wmpo_episodes.dataset import EpisodeDataset, write_dataset, write_subset
from wmpo_worldmodel.fidelity import EpisodeFidelity, Judgement, imagine_episode, summarize, write_report
from wmpo_worldmodel.reward_model import VideoRewardModel

torch.set_num_threads(1)


NO_SUCCESS = Judgement(False, 0.1)


def fidelity(real_success, imagined: Judgement, psnr, real: Judgement = NO_SUCCESS):
    frames = np.zeros((len(psnr) + 1, 4, 4, 3), np.uint8)
    psnr = np.array(psnr)
    return EpisodeFidelity("e", real_success, psnr, psnr / 100, frames, frames, imagined, real)


def test_summary_bins_horizons_and_scores_outcomes_by_hand():
    results = [
        fidelity(True, Judgement(True, 0.7), [30.0] * 8 + [20.0] * 8, real=Judgement(True, 0.9)),
        fidelity(False, Judgement(True, 0.8), [10.0] * 4),
        fidelity(False, Judgement(False, 0.2), [20.0] * 10),
    ]
    summary = summarize(results)
    assert [b["steps"] for b in summary["per_horizon"]] == ["1-8", "9-16"]
    assert summary["per_horizon"][0]["psnr"] == (8 * 30 + 4 * 10 + 8 * 20) / 20
    assert summary["per_horizon"][1]["psnr"] == (8 * 20 + 2 * 20) / 10
    imagined, real_video = summary["imagined"], summary["real_video"]
    assert imagined["accuracy"] == 2 / 3 and imagined["judged_successes"] == 2
    assert imagined["f1"] == 2 * 1 / (2 * 1 + 1 + 0)  # tp 1, fp 1, fn 0
    assert imagined["auroc"] == 0.5  # the success (0.7) outscores one failure (0.2) of two (0.8)
    assert real_video["accuracy"] == 1.0 and real_video["auroc"] == 1.0


def test_report_re_imagines_held_out_episodes_under_their_actions(tmp_path):
    write_dataset(tmp_path / "all", [toy_episode(i, success=i == 0, steps=12) for i in range(3)])
    data = EpisodeDataset(tmp_path / "all")
    write_subset([(data, [2, 0])], tmp_path / "held_out")
    held_out = EpisodeDataset(tmp_path / "held_out")
    assert [r.episode_id for r in held_out.records] == ["toy2", "toy0"]
    episode = held_out.episode(0)
    imagined = imagine_episode(tiny_pipeline(), episode["frames"], episode["actions"], num_inference_steps=2)
    assert imagined.shape == (13, 16, 16, 3)  # T + 1 frames at the model's size, frame 0 real

    variants = {"a": tiny_pipeline(seed=0), "b": tiny_pipeline(seed=1)}
    report = write_report(
        variants, held_out, tmp_path / "report", VideoRewardModel.tiny(image_size=16), sampler_steps=2
    )
    assert set(report) == {"a", "b"} and report["a"]["episodes"] == 2
    assert report["a"]["real_successes"] == 1 and 0.0 <= report["a"]["imagined"]["accuracy"] <= 1.0
    assert all(np.isfinite(b["psnr"]) for b in report["a"]["per_horizon"])
    for name in ("report.json", "report.md", "psnr_ssim.png", "strips.png"):
        assert (tmp_path / "report" / name).is_file()
    assert json.loads((tmp_path / "report" / "report.json").read_text()) == report


def test_cli_reports_trained_models_from_their_folders(tmp_path, capsys):
    write_dataset(tmp_path / "held_out", [toy_episode(i, success=i == 0, steps=12) for i in range(2)])
    world_model = tiny_pipeline().save_atomically(tmp_path / "wm")
    reward = VideoRewardModel.tiny(image_size=16).save_pretrained(tmp_path / "reward")
    argv = ["wm-fidelity", "--held-out", str(tmp_path / "held_out"), "--output", str(tmp_path / "report")]
    argv += ["--reward-model", str(reward), "--sampler-steps", "2", "--threads", "1"]
    assert cli.main(argv + ["--world-model", f"aligned={world_model}"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["aligned"]["episodes"] == 2 and report["aligned"]["real_successes"] == 1
    assert "| aligned |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="NAME=CHECKPOINT"):
        cli.main(argv + ["--world-model", str(world_model)])
