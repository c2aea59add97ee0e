"""The gap after GRPO, taken apart: is it GRPO exploiting the judge, or greedy imagination?

The loop's gap after GRPO judges the WMPO policy, greedy, on the held-out evaluation states. A
large gap there could be GRPO steering towards what the judge calls success, or the judge and
world model over-calling greedy rollouts whatever the policy (their thresholds were fitted on the
collection's temperature-1 rollouts). This measures both policies the same way on the same
states: the base policy and the round's WMPO policy, greedy, from the evaluation episodes' first
frames, judged by the round's kept judge, against each policy's own real evaluation, at several
imagination seeds. ``--judges`` judges the same rollouts by other reward checkpoints instead (the
round's fold models: is the kept judge's threshold, swept on the fold models' out-of-fold scores,
right for the kept model itself?). Run it from the folder the loop ran in (phase JSONs hold
relative paths):

    python bench/greedy_gap.py --loop runs/loop_p128_f1/loop --seeds 0 1 2
    python bench/greedy_gap.py --loop runs/loop_p128_f1/loop --seeds 0 --judges \
        runs/loop_p128_f1/loop/round_0/reward_calibrated runs/loop_p128_f1/loop/round_0/reward_folds/fold_*
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro

from wmpo_jobs.imagination_gap import load_and_measure
from wmpo_jobs.loop import finished_round, imagined_steps


@dataclass
class GreedyGapConfig:
    loop: str  # a loop run's folder, round 0 finished up to its gap after GRPO
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # imagination seeds
    judges: list[str] = field(default_factory=list)  # reward checkpoints ([] = the round's kept judge)


def main(config: GreedyGapConfig) -> None:
    loop = Path(config.loop)
    settings, phases = finished_round(loop, 0)
    torch.set_num_threads(settings.threads)
    base_evaluation = json.loads((loop / "base_evaluate.json").read_text())["dataset"]
    policies = {  # name -> (checkpoint, its real greedy evaluation on the held-out states)
        "base": (settings.policy, base_evaluation),
        "WMPO": (phases["wmpo"]["policy"], phases["evaluate"]["dataset"]),
    }
    print("| policy (greedy, held-out states) | judge | seed | imagined | real | gap |")
    print("|---|---|---|---|---|---|")
    for name, (policy, evaluation) in policies.items():
        for judge in config.judges or [phases["threshold"]["reward_model"]]:
            for seed in config.seeds:
                gap = load_and_measure(
                    policy,
                    phases["align"]["world_model"],
                    judge,
                    evaluation,
                    device=settings.device,
                    max_steps=imagined_steps(settings, evaluation),
                    temperature=0.0,
                    bound=settings.gap_bound,
                    sampler_steps=settings.sampler_steps,
                    seed=seed,
                )
                print(
                    f"| {name} | {Path(judge).name} | {seed} | {gap.imagined_rate:.2f} | {gap.real_rate:.2f} | "
                    f"{gap.gap:+.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main(tyro.cli(GreedyGapConfig))
