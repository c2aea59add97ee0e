"""Reward models side by side on a finished loop round: do they tell the policy's real successes
from its real near misses, on real video, and on the aligned world model's re-imagination of it?

For the round's trained reward model and any others (e.g. ``wmpo train-reward`` on the same
datasets with other steps, image sizes or clip labels):
- real, held out: the round's base and WMPO evaluation episodes (greedy, held-out start states;
  no model of the round trained on them): AUROC of the peak window scores against the real
  outcomes, and the success rate judged at the model's own threshold against the real rate;
- re-imagined: the P rollouts re-imagined by the round's aligned world model from their real first
  frames under their recorded actions (what the loop's threshold phase fits on): AUROC, and the
  success rate judged at the model's own threshold against the rollouts' real rate.
An imagination gap can only be as small as the judge is right: a judge that calls real near misses
successes calls imagined ones successes too. Run it from the folder the loop ran in:

    python bench/reward_judges.py --loop runs/loop_demo/loop --reward-models runs/judges/a/reward_model
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_jobs.loop import finished_round
from wmpo_worldmodel.calibration import peak_scores, reimagine
from wmpo_worldmodel.fidelity import auroc
from wmpo_worldmodel.pipeline import WorldModelPipeline
from wmpo_worldmodel.reward_model import VideoRewardModel


@dataclass
class RewardJudgesConfig:
    loop: str  # a loop run's folder (wmpo loop / make demo's runs/loop_demo/loop), round 0 finished
    reward_models: list[str] = field(default_factory=list)  # reward checkpoints beside the round's trained one
    sampler_steps: int = 0  # denoising steps per re-imagined chunk (0 = the loop's)
    output: str = ""  # JSON of every measurement ('' = <loop>/reward_judges.json)


def main(config: RewardJudgesConfig) -> None:
    loop = Path(config.loop)
    settings, phases = finished_round(loop, 0)
    torch.set_num_threads(settings.threads)

    real = []  # (frames, record) of the held-out real episodes
    base = json.loads((loop / "base_evaluate.json").read_text())
    for dataset in (base["dataset"], phases["evaluate"]["dataset"]):
        data = EpisodeDataset(Path(dataset))
        real += [(data.episode(i)["frames"], data.records[i]) for i in range(len(data.records))]
    rollouts = EpisodeDataset(Path(phases["collect"]["dataset"]))
    sampler_steps = config.sampler_steps or settings.sampler_steps
    world_model = WorldModelPipeline.load(phases["align"]["world_model"], settings.device)
    sampling = {"num_inference_steps": sampler_steps, "generator": torch.Generator().manual_seed(0)}
    imagined = reimagine(world_model, rollouts, list(range(len(rollouts.records))), **sampling)

    real_rate = np.mean([record.outcome == "success" for _, record in real])
    print(f"{len(real)} held-out real episodes ({real_rate:.2f} succeeded), {len(imagined)} re-imagined rollouts")
    imagined_rate = np.mean([record.outcome == "success" for _, record in imagined])
    print(
        "| reward model | threshold | real AUROC | real judged vs real rate "
        "| re-imagined AUROC | re-imagined judged vs real rate |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for path in [phases["reward"]["reward_model"], *config.reward_models]:
        reward = VideoRewardModel.from_pretrained(path, settings.device)
        scores, labels = peak_scores(reward, real)
        judged = float(np.mean(np.array(scores) >= reward.threshold))
        imagined_scores, imagined_labels = peak_scores(reward, imagined)
        imagined_judged = float(np.mean(np.array(imagined_scores) >= reward.threshold))
        row = {
            "reward_model": path,
            "threshold": reward.threshold,
            "real_auroc": auroc(scores, labels),
            "real_judged_rate": judged,
            "real_rate": float(real_rate),
            "reimagined_auroc": auroc(imagined_scores, imagined_labels),
            "reimagined_judged_rate": imagined_judged,
            "reimagined_real_rate": float(imagined_rate),
            "real_scores": scores,
            "real_labels": labels,
            "reimagined_scores": imagined_scores,
            "reimagined_labels": imagined_labels,
            "sampler_steps": sampler_steps,
        }
        rows.append(row)
        shown = {key: "-" if row[key] is None else f"{row[key]:.2f}" for key in ("real_auroc", "reimagined_auroc")}
        print(
            f"| {path} | {reward.threshold:.3f} | {shown['real_auroc']} | {judged:.2f} vs {real_rate:.2f} | "
            f"{shown['reimagined_auroc']} | {imagined_judged:.2f} vs {imagined_rate:.2f} |",
            flush=True,
        )
    print(f"wrote {write_json(config.output or loop / 'reward_judges.json', rows)}")


if __name__ == "__main__":
    main(tyro.cli(RewardJudgesConfig))
