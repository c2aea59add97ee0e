"""The reward model fine-tuned on re-imagined rollouts, against the threshold alone, on a finished loop round.

The round's aligned world model re-imagines each of its P labelled rollouts under the recorded
actions. For each number of fine-tuning steps (0 = the trained reward model, threshold only) it
reports how well the reward model's scores of that imagined video separate the real outcomes
(AUROC, cross-validated accuracy against the majority rate), and at each imagination seed:
- the gap before GRPO: one imagined rollout of the base policy (collect temperature) from each
  rollout's real first frame, judged OUT OF FOLD (a rollout in fold f, ``stratified_folds``, is
  judged by a model fine-tuned on the other folds, at the threshold swept on the other folds'
  out-of-fold scores);
- the gap after GRPO: the round's WMPO policy (greedy) from the evaluation episodes' first frames,
  held-out start states, judged by the model fine-tuned on all P at the out-of-fold threshold;
- with ``--fit-seed``, the same gaps with thresholds swept instead on the base policy's own imagined
  rollouts (imagination seed ``fit_seed``, not among ``seeds``) against the real outcome of their
  start states: fold f's on the other folds' rollouts (before), the final one on all (after).
Run it from the folder the loop ran in (the round's JSON files hold paths relative to it):

    python bench/imagined_reward.py --loop runs/loop_demo/loop --steps 0 100 --seeds 0 1 2
"""

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import tyro

from wmpo_common.atomic_json import write_json
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_jobs.configs import LoopConfig
from wmpo_jobs.imagination_gap import gap_from_counts
from wmpo_jobs.loop import finished_round, imagined_steps
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_worldmodel.calibration import (
    HeldOutJudges,
    calibrate_threshold,
    fine_tuned,
    fold_models,
    out_of_fold_scores,
    peak_scores,
    reimagine,
    stratified_folds,
)
from wmpo_worldmodel.configs import RewardFineTuneConfig
from wmpo_worldmodel.imagination import imagine
from wmpo_worldmodel.pipeline import WorldModelPipeline
from wmpo_worldmodel.reward_model import VideoRewardModel
from wmpo_worldmodel.train_reward import sweep_threshold


@dataclass
class ImaginedRewardConfig:
    loop: str  # a loop run's folder (wmpo loop / make demo's runs/loop_demo/loop), round 0 finished
    steps: list[int] = field(default_factory=lambda: [0, 100])  # fine-tuning steps (0 = threshold only)
    seeds: list[int] = field(default_factory=lambda: [0])  # imagination seeds of the policy's rollouts
    folds: int = LoopConfig.calibration_folds  # cross-validation folds over the rollouts
    world_model: str = ""  # a world model checkpoint to use instead of the round's aligned one ('' = the round's)
    sampler_steps: int = 0  # denoising steps per imagined chunk (0 = the loop's)
    tuning: RewardFineTuneConfig = field(default_factory=RewardFineTuneConfig)  # its steps come from --steps
    output: str = ""  # JSON of every measurement ('' = <loop>/imagined_reward.json)
    fit_seed: int = -1  # >= 0: also fit thresholds on the base policy's imagined rollouts at this seed


def fold_peaks(judges: HeldOutJudges, frames: np.ndarray) -> np.ndarray:
    """(N,) peak score of each start state's imagined rollout ``frames[i]`` by its fold's judge."""
    pairs = zip(judges.episode_judges(), frames, strict=True)
    return np.array([judge.judge(video).scores.max() for judge, video in pairs])


def main(config: ImaginedRewardConfig) -> None:
    loop = Path(config.loop)
    settings, phases = finished_round(loop, 0)
    torch.set_num_threads(settings.threads)

    world_model = WorldModelPipeline.load(config.world_model or phases["align"]["world_model"], settings.device)
    trained = VideoRewardModel.from_pretrained(phases["reward"]["reward_model"], settings.device)
    data = EpisodeDataset(Path(phases["collect"]["dataset"]))
    records = data.records
    real = np.array([r.outcome == "success" for r in records])
    if any(config.steps) and min(real.sum(), (~real).sum()) < 2:
        raise SystemExit(
            f"fine-tuning needs 2 successes and 2 failures among the rollouts, got {real.sum()} of {len(real)} "
            "successes: run with --steps 0"
        )
    folds = stratified_folds(real, config.folds)

    # -- the rollouts re-imagined under their recorded actions (what the reward model is fitted on)
    sampler_steps = config.sampler_steps or settings.sampler_steps
    sampling = {"num_inference_steps": sampler_steps, "generator": torch.Generator().manual_seed(0)}
    videos = reimagine(world_model, data, list(range(len(records))), **sampling)

    # -- the policies' own imagined rollouts from the real first frames (what the gaps judge), per seed
    def imagined_frames(policy: VLAPolicy, episodes: EpisodeDataset, temperature: float, seed: int) -> np.ndarray:
        """uint8 (N, budget + 1, S, S, 3): one imagined rollout per real episode, as the loop's gap."""
        budget = imagined_steps(settings, str(episodes.path))
        batch = imagine(
            world_model,
            policy,
            np.stack([np.asarray(episodes.episode(i)["frames"][0]) for i in range(len(episodes.records))]),
            [r.instruction for r in episodes.records],
            budget,
            temperature=temperature,
            sampler_steps=sampler_steps,
            generator=torch.Generator().manual_seed(seed),
        )
        return batch.frames[:, : budget + 1]

    evaluation = EpisodeDataset(Path(phases["evaluate"]["dataset"]))
    evaluated = np.array([r.outcome == "success" for r in evaluation.records])
    base = VLAPolicy.from_pretrained(settings.policy, settings.device)
    improved = VLAPolicy.from_pretrained(phases["wmpo"]["policy"], settings.device)
    if config.fit_seed in config.seeds:
        raise SystemExit(f"--fit-seed {config.fit_seed} is among --seeds: a gap would judge what it was fitted on")
    fit_seeds = [config.fit_seed] if config.fit_seed >= 0 else []
    before = {
        seed: imagined_frames(base, data, settings.collect_temperature, seed) for seed in [*config.seeds, *fit_seeds]
    }
    after = {seed: imagined_frames(improved, evaluation, 0.0, seed) for seed in config.seeds}

    majority = max(real.mean(), 1 - real.mean())
    print(f"{len(records)} rollouts, {int(real.sum())} real successes (majority rate {majority:.2f})")
    print(
        "| fine-tuning steps | AUROC | cross-validated accuracy | seed | thresholds fitted on | "
        "gap before (out of fold) | gap after |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for steps in config.steps:
        tuning = replace(config.tuning, steps=steps)
        if steps == 0:  # the trained model, its threshold refitted in each fold
            scores = np.array(peak_scores(trained, videos)[0])
            models = [copy.copy(trained) for _ in range(folds.max() + 1)]  # one threshold each
        else:
            models = fold_models(trained, videos, folds, tuning)
            scores = out_of_fold_scores(models, videos, folds)
        criterion = settings.threshold_criterion  # the loop's
        calibration = calibrate_threshold(scores, real.astype(int), config.folds, criterion)
        judges = HeldOutJudges.fitted(models, scores, real, folds, criterion)  # the loop's gap before, out of fold
        final = trained if steps == 0 else fine_tuned(trained, videos, tuning)  # after GRPO: held-out states
        # (fold thresholds, final threshold) by what they were fitted on
        fits = {"re-imagined rollouts": ([m.threshold for m in judges.models], calibration.threshold)}
        if fit_seeds:
            peaks = fold_peaks(judges, before[fit_seeds[0]])
            fold_thresholds = [
                sweep_threshold(peaks[folds != f], real[folds != f].astype(int), criterion)["threshold"]
                for f in range(len(judges.models))
            ]
            fits[f"policy's imagined, seed {fit_seeds[0]}"] = (
                fold_thresholds,
                sweep_threshold(peaks, real.astype(int), criterion)["threshold"],
            )
        for seed in config.seeds:
            before_peaks = fold_peaks(judges, before[seed])
            after_peaks = [final.judge(video).scores.max() for video in after[seed]]
            for fitted_on, (fold_thresholds, threshold) in fits.items():
                verdicts = np.array([p >= fold_thresholds[f] for p, f in zip(before_peaks, folds, strict=True)])
                gap = gap_from_counts(
                    verdicts, real, settings.gap_bound, settings.collect_temperature, out_of_fold=steps > 0
                )
                later = np.array([p >= threshold for p in after_peaks])
                gap_after = gap_from_counts(later, evaluated, settings.gap_bound)
                area = "-" if calibration.auroc is None else f"{calibration.auroc:.2f}"
                print(
                    f"| {steps} | {area} | {calibration.cross_validated_accuracy:.2f} | {seed} | {fitted_on} | "
                    f"{gap.imagined_rate:.2f} vs {gap.real_rate:.2f}: {gap.gap:+.2f} | "
                    f"{gap_after.imagined_rate:.2f} vs {gap_after.real_rate:.2f}: {gap_after.gap:+.2f} |",
                    flush=True,
                )
                rows.append(
                    {
                        "steps": steps,
                        "seed": seed,
                        "thresholds_fitted_on": fitted_on,
                        "fold_thresholds": fold_thresholds,
                        "threshold": threshold,
                        "world_model": config.world_model or phases["align"]["world_model"],
                        "sampler_steps": sampler_steps,
                        "calibration": calibration.to_dict(),
                        "gap_before": gap.to_dict(),
                        "gap_after": gap_after.to_dict(),
                    }
                )
    print(f"wrote {write_json(config.output or loop / 'imagined_reward.json', rows)}")


if __name__ == "__main__":
    main(tyro.cli(ImaginedRewardConfig))
