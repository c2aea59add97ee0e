"""The WMPO loop (lifelong): collect P real episodes with the current policy -> align the world
model on them -> train the reward model -> fit its threshold on imagined video -> measure the
imagination gap -> GRPO in imagination -> evaluate on held-out start states -> measure the gap
again -> deploy unless the greedy drift is too large; repeat.

  wmpo loop --task Lift --policy runs/base/Lift/bc/checkpoints/step_1500 --world-model WM --demos DATA

Every phase writes its result to <output>/round_<r>/<phase>.json when it is done; a re-run skips
finished phases (and the training phases resume from their own checkpoints), so a crash in any
phase loses no finished work. Deploying points <output>/current (a symlink, replaced atomically)
at the new policy; start the policy server with ``checkpoint:=<output>/current``. Real episodes
come from a ``wmpo_jobs.collector.Collector`` (SimCollector: a sim graph of its own; GraphCollector:
the graph beside the trainer node), so this module needs no ROS. ``on_phase(round, phase, result)``
reports progress (the trainer node's feedback).

Imagination against reality, every round (WMPO's premise is that the aligned world model
reproduces the policy's failures; this measures that it does):
- ``threshold``: each of the P rollouts is re-imagined by the aligned world model from its real
  first frame under its recorded actions, the reward model scores the imagined video, and the
  threshold is the one that maximises ``threshold_criterion`` (F1, or balanced accuracy) against
  the real outcomes (the policy's near misses are the negatives; the demonstrations give
  positives when no rollout succeeded). Its F1 is reported
  cross-validated (interleaved folds); the kept threshold is fitted on all P. The reward model is
  also fine-tuned on that imagined video, labelled by the real outcomes, and judged out of fold;
  of the two, the one with the better cross-validated accuracy is kept when it beats always
  answering the majority outcome, by a one-sided binomial test at p < 0.05 (else the trained
  model and threshold stay). GRPO uses it; when it is the fine-tuned one, GRPO's rollouts from
  start state i are judged by the fold model not fine-tuned on i (in sample, the judge could
  reward the start state it has seen labelled, not the rollout).
- ``gap_before`` / ``gap_after``: imagined success (the policy acting in the world model from the
  real start frames, or a ``real_context_fraction`` share of them from real mid-episode keyframes as
  GRPO starts, judged by the calibrated reward model; before GRPO, when that is the fine-tuned
  one, out of fold by its fold models) against real success on the same
  start states: the P rollouts at the collection temperature before GRPO, the greedy held-out
  evaluation after. Beyond ``gap_bound`` it is a loud warning in the log and the report.
"""

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from wmpo_common.atomic_json import write_json
from wmpo_common.ranges import parse_range
from wmpo_jobs.collector import Collector
from wmpo_jobs.configs import LoopConfig
from wmpo_jobs.report_page import write_report_page
from wmpo_trainer import train_wmpo
from wmpo_trainer.configs import GRPOConfig, WMPOConfig
from wmpo_worldmodel import train_reward, train_world_model
from wmpo_worldmodel.configs import RewardConfig, RewardFineTuneConfig, WMConfig

log = logging.getLogger(__name__)
PHASES = (
    "collect",
    "align",
    "reward",
    "threshold",
    "gap_before",
    "wmpo",
    "evaluate",
    "gap_after",
    "gap_before_held_out",
    "drift",
    "deploy",
)


def _finished(folder: Path, phase: str) -> dict | None:
    """The result of a phase that finished before (a re-run skips it), else None."""
    done = folder / f"{phase}.json"
    return json.loads(done.read_text()) if done.is_file() else None


def finished_round(output: str | Path, r: int = 0) -> tuple[LoopConfig, dict[str, dict]]:
    """A loop run's config (its loop_config.json) and the results of round r's finished phases,
    keyed by phase; paths in them are relative to the folder the loop ran in."""
    output = Path(output)
    stored = json.loads((output / "loop_config.json").read_text())
    nested = {"grpo": GRPOConfig, "reward_fine_tune": RewardFineTuneConfig}
    config = LoopConfig(**{key: nested[key](**value) if key in nested else value for key, value in stored.items()})
    phases = {phase: result for phase in PHASES if (result := _finished(output / f"round_{r}", phase)) is not None}
    return config, phases


def _finish(folder: Path, phase: str, result: dict) -> dict:
    """Record a phase's result atomically."""
    write_json(folder / f"{phase}.json", result)
    return result


def _deploy(output: Path, checkpoint: str) -> dict:
    link, tmp = output / "current", output / ".current.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(checkpoint).resolve(), tmp)
    os.replace(tmp, link)
    return {"policy": checkpoint, "link": str(link)}


def run_loop(
    config: LoopConfig, collect: Collector, on_phase=lambda r, phase, result: None, should_stop=lambda: False
) -> dict:
    """Run (or resume) the rounds; returns the summary written to <output>/summary.json."""
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "loop_config.json", asdict(config))
    steps = config.max_steps
    eval_ids = parse_range(config.eval_init_states)
    eval_goals = [{"init_state_id": i, "max_steps": steps, "record_mode": "all"} for i in eval_ids]
    base = _finished(output, "base_evaluate") or _finish(
        output, "base_evaluate", collect(config.task, config.policy, eval_goals, output / "base_eval", 0.0)
    )
    on_phase(-1, "base_evaluate", base)
    policy, world_model, rollouts, rounds = config.policy, config.world_model, [], []
    policy_evaluation = base["dataset"]  # the deployed policy's real greedy evaluation (held-out states)
    deployed_rate = base["success_rate"]  # and its success rate there
    for r in range(config.rounds):
        if should_stop():
            break
        folder = output / f"round_{r}"
        folder.mkdir(exist_ok=True)
        first = config.collect_first_init_state + r * config.budget
        goals = [  # sampling seeds distinct across rounds: no round repeats another's draws
            {"init_state_id": first + i, "sampling_seed": first + i, "max_steps": steps, "record_mode": "all"}
            for i in range(config.budget)
        ]

        collected = _finished(folder, "collect") or _finish(
            folder, "collect", collect(config.task, policy, goals, folder / "rollouts", config.collect_temperature)
        )
        on_phase(r, "collect", collected)
        rollouts.append(collected["dataset"])

        aligned = _finished(folder, "align")
        if aligned is None:
            wm_config = WMConfig(
                datasets=list(rollouts),
                output=str(folder / "wm"),
                steps=config.align_steps,
                init_checkpoint=world_model,
                threads=config.threads,
                device=config.device,
            )
            aligned = _finish(folder, "align", {"world_model": str(train_world_model.train(wm_config))})
        on_phase(r, "align", aligned)

        reward = _finished(folder, "reward")
        if reward is None:
            reward_config = RewardConfig(
                datasets=[config.demos, *rollouts],
                output=str(folder / "reward"),
                steps=config.reward_steps,
                threshold_criterion=config.threshold_criterion,
                threads=config.threads,
                device=config.device,
            )
            reward = _finish(folder, "reward", {"reward_model": str(train_reward.train(reward_config))})
        on_phase(r, "reward", reward)
        if should_stop():
            break

        calibrated = _finished(folder, "threshold") or _finish(
            folder,
            "threshold",
            _calibrate(aligned["world_model"], reward["reward_model"], collected["dataset"], folder, config),
        )
        on_phase(r, "threshold", calibrated)
        judge = calibrated["reward_model"]
        gap_before = _finished(folder, "gap_before") or _finish(
            folder,
            "gap_before",
            _gap(
                policy,
                aligned["world_model"],
                judge,
                collected["dataset"],
                config.collect_temperature,
                config,
                calibrated.get("held_out_judges"),  # a round recorded before it existed has none
            ),
        )
        on_phase(r, "gap_before", gap_before)

        improved = _finished(folder, "wmpo") or _finish(
            folder,
            "wmpo",
            _run_wmpo(
                config,
                policy,
                aligned["world_model"],
                judge,
                collected["dataset"],
                folder / "wmpo",
                calibrated.get("held_out_judges"),
            ),
        )
        on_phase(r, "wmpo", improved)

        evaluated = _finished(folder, "evaluate") or _finish(
            folder, "evaluate", collect(config.task, improved["policy"], eval_goals, folder / "eval", 0.0)
        )
        on_phase(r, "evaluate", evaluated)
        gap_after = _finished(folder, "gap_after") or _finish(
            folder,
            "gap_after",
            _gap(improved["policy"], aligned["world_model"], judge, evaluated["dataset"], 0.0, config),
        )
        on_phase(r, "gap_after", gap_after)
        # the policy before GRPO measured as the gap after measures the new one (greedy, held-out
        # states, the same judge): the difference of the two is GRPO's own change
        gap_held_out = _finished(folder, "gap_before_held_out") or _finish(
            folder,
            "gap_before_held_out",
            _gap(policy, aligned["world_model"], judge, policy_evaluation, 0.0, config),
        )
        on_phase(r, "gap_before_held_out", gap_held_out)
        strips = folder / "strips.png"
        if not strips.is_file():
            _write_strips(strips, aligned["world_model"], evaluated["dataset"], config)
        gate = _finished(folder, "drift") or _finish(
            folder,
            "drift",
            success_gate(
                _drift_gate(policy, improved["policy"], collected["dataset"], config),
                deployed_rate,
                evaluated["success_rate"],
                config.max_success_drop,
            ),
        )
        on_phase(r, "drift", gate)
        if gate["deploy"]:
            deployed = _finished(folder, "deploy") or _finish(folder, "deploy", _deploy(output, improved["policy"]))
            policy, policy_evaluation = improved["policy"], evaluated["dataset"]
            deployed_rate = evaluated["success_rate"]
        else:
            log.warning(f"round {r}: the new policy is NOT deployed, {policy} stays: {gate['reason']}")
            kept = {"refused": improved["policy"], "reason": gate["reason"]}
            deployed = _finished(folder, "deploy") or _finish(folder, "deploy", {**_deploy(output, policy), **kept})
        on_phase(r, "deploy", deployed)

        world_model = aligned["world_model"]
        rounds.append(
            {
                "round": r,
                "collected_success_rate": collected["success_rate"],
                "imagined_success_rate": improved["imagined_success_rate"],
                "imagined_success_per_iteration": improved["imagined_success_per_iteration"],
                "eval_success_rate": evaluated["success_rate"],
                "eval_success_rate_95ci": evaluated["success_rate_95ci"],
                "reward_threshold": calibrated["threshold"],
                "reward_model_kept": _kept(calibrated),
                "grpo_judged_out_of_fold": improved.get("judged_out_of_fold", False),
                # does imagination reproduce the real outcomes? AUROC of the trained reward model's
                # scores of the re-imagined rollouts
                "reimagined_auroc": (calibrated["calibration"] or {}).get("auroc"),
                "imagination_gap_before": gap_before,
                "imagination_gap_before_held_out": gap_held_out,
                "imagination_gap_after": gap_after,
                "policy": improved["policy"],
                "deployed": gate["deploy"],
                "greedy_flipped": gate["greedy_flipped"],
            }
        )
    summary = {
        "task": config.task,
        "budget_per_round": config.budget,
        "gap_bound": config.gap_bound,
        "base_success_rate": base["success_rate"],
        "base_success_rate_95ci": base["success_rate_95ci"],
        "rounds": rounds,
    }
    write_json(output / "summary.json", summary)
    write_report(output, summary)
    write_report_page(output)  # report.html: the report above, the strips and the training curves
    return summary


def _kept(calibrated: dict) -> str:
    """Which reward model a round's threshold phase kept: trained | refitted threshold | fine-tuned
    (a round recorded before fine-tuning existed says it by its threshold)."""
    if "kept" in calibrated:
        return calibrated["kept"]
    return "trained" if calibrated["threshold"] == calibrated["trained_threshold"] else "refitted threshold"


def _drift_gate(before: str, after: str, rollouts: str, config: LoopConfig) -> dict:
    import torch

    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_policy.vla.policy import VLAPolicy
    from wmpo_trainer.greedy_drift import deployment_gate

    torch.set_num_threads(config.threads)
    old, new = VLAPolicy.from_pretrained(before, config.device), VLAPolicy.from_pretrained(after, config.device)
    return deployment_gate(old, new, EpisodeDataset(Path(rollouts)), config.drift_limit)


def success_gate(gate: dict, deployed: float, new: float, max_drop: float) -> dict:
    """The drift gate's record with the held-out check added: a policy within its drift limit is
    still refused when its greedy success on the held-out states is more than ``max_drop`` below
    the deployed policy's on the same states (both rates in [0, 1])."""
    checked = {**gate, "success_deployed": deployed, "success_new": new, "max_success_drop": max_drop}
    if gate["deploy"] and deployed - new > max_drop:
        fell = f"greedy success on the held-out states fell {deployed:.2f} -> {new:.2f} (max_success_drop {max_drop})"
        checked.update(deploy=False, reason=f"{fell}; {gate['reason']}")
    return checked


def imagined_steps(config: LoopConfig, dataset: str) -> int:
    """Imagined episode length: the loop's step budget, else the longest real episode's (the task's)."""
    from wmpo_episodes.dataset import EpisodeDataset

    return config.max_steps or max(r.num_steps for r in EpisodeDataset(Path(dataset)).records)


def _calibrate(world_model: str, reward_model: str, rollouts: str, folder: Path, config: LoopConfig) -> dict:
    """The reward model fitted on the aligned world model's re-imagination of the round's labelled
    rollouts (``wmpo_worldmodel.calibration``), saved as a new reward checkpoint beside the trained
    one: of the trained model with its threshold refitted and the model fine-tuned on that video
    (its threshold swept on the fold models' out-of-fold scores, a proxy for the final model's),
    the better by cross-validated accuracy when it beats the majority outcome (``informative``:
    significantly, p < 0.05), else the trained model as is. A fine-tuned judge has seen the P
    rollouts' labels, so with it the fold models are kept too (``held_out_judges``,
    ``calibration.HeldOutJudges``): the gap before GRPO, on the same rollouts' start states, is
    judged out of fold; the gap after (held-out start states) by the kept judge."""
    import torch

    from wmpo_episodes.dataset import EpisodeDataset
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
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(config.threads)
    pipeline = WorldModelPipeline.load(world_model, config.device)
    reward = VideoRewardModel.from_pretrained(reward_model, config.device)
    sampling = {"num_inference_steps": config.sampler_steps, "generator": torch.Generator().manual_seed(0)}
    data = EpisodeDataset(Path(rollouts))
    videos = reimagine(pipeline, data, list(range(len(data.records))), **sampling)
    fitted_on = f"{len(videos)} re-imagined rollouts"
    if not any(record.outcome == "success" for _, record in videos):  # the demonstrations give positives
        demos = EpisodeDataset(Path(config.demos))
        picked = list(range(min(len(demos.records), len(videos))))
        videos += reimagine(pipeline, demos, picked, **sampling)
        fitted_on += f" (no real success) + {len(picked)} re-imagined demonstrations"
    scores, labels = peak_scores(reward, videos)
    trained, kept = reward.threshold, "trained"
    calibration = tuned_calibration = judges = None
    if all(labels):  # no real failure to fit against: the trained threshold stays
        log.warning(f"reward threshold not refitted: every one of the {len(labels)} rollouts succeeded")
    else:
        criterion = config.threshold_criterion
        calibration = calibrate_threshold(scores, labels, config.calibration_folds, criterion)
        tuning = config.reward_fine_tune
        if tuning.steps > 0 and min(sum(labels), len(labels) - sum(labels)) >= 2:  # each fold's rest has both
            fold = stratified_folds(labels, config.calibration_folds)
            models = fold_models(reward, videos, fold, tuning)
            held_out = out_of_fold_scores(models, videos, fold)
            tuned_calibration = calibrate_threshold(held_out, labels, config.calibration_folds, criterion)
            judges = HeldOutJudges.fitted(models, held_out, labels, fold, criterion)
        elif tuning.steps > 0:
            log.warning(f"reward model not fine-tuned: {fitted_on} hold fewer than 2 successes or 2 failures")
        candidates = ((calibration, "refitted threshold"), (tuned_calibration, "fine-tuned"))
        informative = [(c, name) for c, name in candidates if c is not None and c.informative]
        if informative:  # the better cross-validated accuracy; a tie keeps the threshold alone
            best, kept = max(informative, key=lambda pair: pair[0].cross_validated_accuracy)
            if kept == "fine-tuned":
                reward = fine_tuned(reward, videos, tuning)
            reward.threshold = best.threshold
        else:  # no better than the majority outcome: refitting would only move the imagined success rate
            accuracies = ", ".join(
                f"{name} {c.cross_validated_accuracy:.2f} (p = {c.majority_p_value:.2f})" for c, name in candidates if c
            )
            log.warning(
                f"reward model not refitted: on {fitted_on} the cross-validated accuracy ({accuracies}) does not "
                "beat always answering the majority outcome at p < 0.05 (imagination does not reproduce the real "
                "outcomes)"
            )
    path = reward.save_pretrained(folder / "reward_calibrated")
    # the rollouts' folds (re-imagined demonstrations, appended after them, only trained the fold models)
    held_out_judges = judges.rollouts(len(data.records)).save(folder / "reward_folds") if kept == "fine-tuned" else None
    log.info(f"reward model: {kept}, threshold {trained:.3f} -> {reward.threshold:.3f} on {fitted_on}")
    return {
        "reward_model": str(path),
        "kept": kept,  # trained | refitted threshold | fine-tuned
        "threshold": reward.threshold,
        "trained_threshold": trained,
        "fitted_on": fitted_on,
        "calibration": calibration.to_dict() if calibration else None,  # the trained model's scores
        "fine_tuned_calibration": tuned_calibration.to_dict() if tuned_calibration else None,  # out of fold
        "held_out_judges": held_out_judges,  # the fold models that judge the gap before GRPO (fine-tuned kept)
    }


def _gap(
    policy: str,
    world_model: str,
    reward_model: str,
    real: str,
    temperature: float,
    config: LoopConfig,
    held_out_judges: dict | None = None,
) -> dict:
    """Imagined vs real success of ``policy`` on the start states of the real episodes ``real``,
    judged by ``reward_model``, or out of fold by ``held_out_judges`` (a saved HeldOutJudges)."""
    import torch

    from wmpo_jobs.imagination_gap import load_and_measure

    torch.set_num_threads(config.threads)
    gap = load_and_measure(
        policy,
        world_model,
        reward_model,
        real,
        max_steps=imagined_steps(config, real),
        temperature=temperature,
        bound=config.gap_bound,
        sampler_steps=config.sampler_steps,
        real_context_fraction=config.real_context_fraction,
        device=config.device,
        held_out_judges=held_out_judges,
    )
    line = f"imagined {gap.imagined_rate:.2f} vs real {gap.real_rate:.2f} on {gap.episodes} start states"
    return {**gap.to_dict(), "message": gap.warning() or line}


def _run_wmpo(
    config: LoopConfig,
    policy: str,
    world_model: str,
    reward: str,
    starts: str,
    output: Path,
    held_out_judges: dict | None = None,
) -> dict:
    """GRPO in imagination from the start states of ``starts`` (the P rollouts), judged by
    ``reward``, or out of fold by ``held_out_judges`` (a saved HeldOutJudges over those rollouts:
    a fine-tuned judge saw their labels, so in sample it could reward the start state, not the
    rollout)."""
    steps = imagined_steps(config, starts)
    judges_file = ""
    if held_out_judges:
        judges_file = output.parent / "held_out_judges.json"
        judges_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(judges_file, held_out_judges)
    checkpoint = train_wmpo.train(
        WMPOConfig(
            policy=policy,
            world_model=world_model,
            reward_model=reward,
            starts=[starts],
            output=str(output),
            held_out_judges=str(judges_file),
            iterations=config.wmpo_iterations,
            max_steps=steps,
            grpo=config.grpo,
            real_context_fraction=config.real_context_fraction,
            sampler_steps=config.sampler_steps,
            threads=config.threads,
            device=config.device,
        )
    )
    history = json.loads((output / "history.json").read_text())
    per_iteration = [h["imagined_success_rate"] for h in history]
    return {
        "policy": str(checkpoint),
        "reward_model": reward,
        "judged_out_of_fold": bool(held_out_judges),
        "imagined_success_rate": float(np.mean(per_iteration)),
        "imagined_success_per_iteration": per_iteration,
    }


def _write_strips(path: Path, world_model: str, evaluated: str, config: LoopConfig) -> None:
    """Real vs imagined: the round's first evaluation episode, re-imagined by the aligned world
    model under the actions the new policy really took (rows: real, imagined)."""
    import torch

    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_worldmodel.fidelity import imagine_episode, write_strips
    from wmpo_worldmodel.pipeline import WorldModelPipeline, to_model_frames, to_uint8_frames

    torch.set_num_threads(config.threads)
    pipeline = WorldModelPipeline.load(world_model, config.device)
    episode = EpisodeDataset(Path(evaluated)).episode(0)
    generator = torch.Generator().manual_seed(0)
    imagined = imagine_episode(
        pipeline, episode["frames"], episode["actions"], num_inference_steps=config.sampler_steps, generator=generator
    )
    real = to_uint8_frames(to_model_frames(np.asarray(episode["frames"])[None], imagined.shape[1], "cpu"))[0]
    write_strips(path, [("real", real), ("imagined", imagined)])


GAP_ROWS = {  # summary key of a round -> its row label
    "imagination_gap_before": "before",
    "imagination_gap_before_held_out": "before, held-out states, greedy",
    "imagination_gap_after": "after",
}


def _gap_rows(summary: dict) -> list[tuple[str, dict]]:
    """(label, gap) for each round's policy before GRPO (on the P rollouts' states, then as the
    gap after measures: greedy on the held-out states) and after, in order (a round recorded
    before the held-out row existed has none)."""
    return [
        (f"round {r['round']} {label}", r[key])
        for r in summary["rounds"]
        for key, label in GAP_ROWS.items()
        if key in r
    ]


def grpo_change(round_: dict) -> str:
    """GRPO's own change on the held-out states, imagined against real (both greedy, same judge):
    the gap after less what the policy before already had there ('' for a round without it)."""
    before, after = round_.get("imagination_gap_before_held_out"), round_["imagination_gap_after"]
    if before is None:
        return ""
    imagined = after["imagined_rate"] - before["imagined_rate"]
    real = after["real_rate"] - before["real_rate"]
    return f"round {round_['round']}: GRPO changed imagined success by {imagined:+.2f} and real success by {real:+.2f}"


def write_report(output: Path, summary: dict) -> None:
    """report.md and success.png: base vs each round's evaluation (95% intervals), imagined success
    during WMPO, and the imagination gap before and after GRPO (warnings first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("base", summary["base_success_rate"], summary["base_success_rate_95ci"], None)]
    rows += [
        (f"round {r['round']}", r["eval_success_rate"], r["eval_success_rate_95ci"], r["imagined_success_rate"])
        for r in summary["rounds"]
    ]
    gaps = _gap_rows(summary)
    figure, (axis, per_iteration, gap_axis) = plt.subplots(1, 3, figsize=(16, 3.5))
    x = np.arange(len(rows))
    rates = np.array([row[1] for row in rows])
    low = rates - np.array([row[2][0] for row in rows])
    high = np.array([row[2][1] for row in rows]) - rates
    axis.errorbar(x, rates, yerr=[low, high], fmt="o-", capsize=4, label="real (held-out start states)")
    imagined = [(i, row[3]) for i, row in enumerate(rows) if row[3] is not None]
    if imagined:
        axis.plot(*zip(*imagined, strict=True), "s--", label="imagined (mean during WMPO)")
    axis.set_xticks(x, [row[0] for row in rows])
    axis.set_ylabel("success rate")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title(f"WMPO on {summary['task']}, P = {summary['budget_per_round']} real episodes per round")
    iteration = 0
    for r in summary["rounds"]:
        values = r["imagined_success_per_iteration"]
        steps = np.arange(iteration, iteration + len(values)) + 1
        per_iteration.plot(steps, values, "o-", label=f"round {r['round']}")
        iteration += len(values)
    per_iteration.set_xlabel("WMPO iteration")
    per_iteration.set_ylabel("imagined success rate")
    per_iteration.set_ylim(0, 1)
    per_iteration.grid(alpha=0.3)
    if summary["rounds"]:
        per_iteration.legend()
    bound = summary["gap_bound"]
    values = [gap["gap"] for _, gap in gaps]
    gap_axis.bar(range(len(gaps)), values, color=["tab:red" if abs(v) > bound else "tab:green" for v in values])
    gap_axis.axhline(bound, color="gray", linestyle="--")
    gap_axis.axhline(-bound, color="gray", linestyle="--")
    gap_axis.set_xticks(range(len(gaps)), [label.replace(" ", "\n", 1) for label, _ in gaps])
    gap_axis.set_ylim(-1, 1)
    gap_axis.set_ylabel("imagined - real success")
    gap_axis.set_title(f"imagination gap, same start states (bound +/-{bound:.2f})")
    gap_axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output / "success.png", dpi=120)
    plt.close(figure)
    lines = [f"# WMPO loop: {summary['task']}", ""]
    lines += [f"**Warning: {gap['message']}** ({label})" for label, gap in gaps if gap["exceeded"]]
    lines += [
        "",
        "![success](success.png)",
        "",
        "| policy | real success (95% CI) | imagined success (mean during WMPO) |",
        "|---|---|---|",
    ]
    for name, rate, (lo, hi), imagined_rate in rows:
        shown = "-" if imagined_rate is None else f"{imagined_rate:.2f}"
        lines.append(f"| {name} | {rate:.2f} ({lo:.2f}-{hi:.2f}) | {shown} |")
    lines += [
        "",
        "Imagination gap: the policy imagined from the real start frames (or keyframes, as GRPO starts: "
        "real_context_fraction; judged by the calibrated reward "
        "model) against its real outcomes on the same start states; before GRPO: the P rollouts, and "
        "greedy on the held-out evaluation states (its last real evaluation); after: the greedy evaluation.",
        "",
        "| policy | start states | imagined (95% CI) | real (95% CI) | gap |",
        "|---|---|---|---|---|",
    ]
    for label, gap in gaps:
        (il, ih), (rl, rh) = gap["imagined_95ci"], gap["real_95ci"]
        flag = " **beyond bound**" if gap["exceeded"] else ""
        judged = ", judged out of fold" if gap.get("out_of_fold") else ""  # by the fold models (fine-tuned kept)
        lines.append(
            f"| {label}{judged} | {gap['episodes']} | {gap['imagined_rate']:.2f} ({il:.2f}-{ih:.2f}) | "
            f"{gap['real_rate']:.2f} ({rl:.2f}-{rh:.2f}) | {gap['gap']:+.2f}{flag} |"
        )
    changes = [line for r in summary["rounds"] if (line := grpo_change(r))]
    if changes:
        lines += ["", "On the held-out states (greedy, the same judge):", ""] + [f"- {line}" for line in changes]
    lines += ["", "The reward model judging imagination (fitted on the round's re-imagined rollouts):", ""]
    for r in summary["rounds"]:
        auroc = r.get("reimagined_auroc")
        separation = "-" if auroc is None else f"{auroc:.2f}"
        grpo_judges = "; GRPO judged out of fold by its fold models" if r.get("grpo_judged_out_of_fold") else ""
        lines.append(
            f"- round {r['round']}: {r.get('reward_model_kept', 'trained')}, threshold {r['reward_threshold']:.3f}; "
            f"AUROC of the trained reward model's scores of the re-imagined rollouts against their real "
            f"outcomes {separation} (0.5 = chance){grpo_judges}"
        )
    for r in summary["rounds"]:
        lines += ["", f"Round {r['round']}: a real evaluation episode and its imagination (rows: real, imagined):", ""]
        lines.append(f"![round {r['round']} strips](round_{r['round']}/strips.png)")
    (output / "report.md").write_text("\n".join(lines) + "\n")
