"""One command for the world-model fidelity study of a task (plain Python, no ROS):

  wmpo wm-study --demos runs/base/Lift/data --rollouts runs/base/Lift/eval/episodes --output runs/wm_study/Lift

From expert demos and the base policy's recorded rollouts (successes and failures):
1. pretrain two world models on the demos but the last ``held_out_demos``, with and without
   context noise (this phase needs no rollouts yet);
2. align each on every other rollout (policy-behaviour alignment); the held-out real episodes are
   the held-out demos and the other rollouts;
3. train the reward model on training demos + rollouts (threshold by F1 on its own held-out part);
4. write the fidelity report of the four variants on the held-out real episodes.
Each phase is skipped when its output exists, so a re-run resumes.
"""

import json
from pathlib import Path

from wmpo_common.atomic_json import write_json
from wmpo_episodes.bag_conversion import build_dataset
from wmpo_episodes.dataset import EpisodeDataset, write_subset
from wmpo_jobs.configs import StudyConfig
from wmpo_worldmodel import train_reward, train_world_model
from wmpo_worldmodel.configs import RewardConfig, WMConfig
from wmpo_worldmodel.fidelity import write_report
from wmpo_worldmodel.pipeline import WorldModelPipeline
from wmpo_worldmodel.reward_model import VideoRewardModel


def run_study(config: StudyConfig) -> dict:
    output = Path(config.output)
    data_dir = output / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    demos = EpisodeDataset(Path(config.demos))
    n_train_demos = len(demos) - config.held_out_demos
    if not (data_dir / "train_demos").exists():
        write_subset([(demos, range(n_train_demos))], data_dir / "train_demos")
    pretrained = {
        noise: train_world_model.train(
            WMConfig(
                datasets=[str(data_dir / "train_demos")],
                output=str(output / f"wm_noise{noise}_pretrained"),
                steps=config.pretrain_steps,
                batch_size=config.batch_size,
                context_noise_level=noise,
                threads=config.threads,
                device=config.device,
            )
        )
        for noise in (config.context_noise_level, 0)
    }

    if not (data_dir / "rollouts").exists():
        build_dataset(Path(config.rollouts), data_dir / "rollouts")
    rollouts = EpisodeDataset(data_dir / "rollouts")
    splits = {
        "train_rollouts": [(rollouts, range(0, len(rollouts), 2))],
        "held_out": [(demos, range(n_train_demos, len(demos))), (rollouts, range(1, len(rollouts), 2))],
    }
    for name, parts in splits.items():
        if not (data_dir / name).exists():
            write_subset(parts, data_dir / name)
    variants = {}
    for noise, checkpoint in pretrained.items():
        aligned = train_world_model.train(
            WMConfig(
                datasets=[str(data_dir / "train_rollouts")],
                output=str(output / f"wm_noise{noise}_aligned"),
                steps=config.align_steps,
                batch_size=config.batch_size,
                init_checkpoint=str(checkpoint),  # its context noise level too
                threads=config.threads,
                device=config.device,
            )
        )
        variants[f"noise{noise} pretrained"] = checkpoint
        variants[f"noise{noise} aligned"] = aligned

    reward_path = output / "reward" / "reward_model"
    if not reward_path.exists():
        train_reward.train(
            RewardConfig(
                datasets=[str(data_dir / "train_demos"), str(data_dir / "train_rollouts")],
                output=str(output / "reward"),
                steps=config.reward_steps,
                threads=config.threads,
                device=config.device,
            )
        )
    reward = VideoRewardModel.from_pretrained(reward_path, config.device)
    report = write_report(
        {name: WorldModelPipeline.load(path, config.device) for name, path in variants.items()},
        EpisodeDataset(data_dir / "held_out"),
        output / "report",
        reward,
        max_episodes=config.report_episodes,
        sampler=config.sampler,
        sampler_steps=config.sampler_steps,
    )
    reward_report = json.loads((output / "reward" / "reward_report.json").read_text())
    write_json(output / "report" / "reward.json", reward_report)
    return report
