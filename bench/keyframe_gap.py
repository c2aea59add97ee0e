"""First-frame starts against keyframe starts, on the imagination gap of a finished loop round.

For the round's policy before GRPO (on its P collected rollouts, at the collect temperature) and
after (on the evaluation episodes, greedy), the gap |imagined - real| is measured with every
rollout started from the real first frame (real_context_fraction 0, the paper's starts) and from
a real mid-episode keyframe with the steps it had left (1, WoVR's), with the round's aligned world
model and calibrated reward model, at each seed. Run it from the folder the loop ran in (the
round's JSON files hold paths relative to it):

    python bench/keyframe_gap.py --loop runs/loop_demo/loop --seeds 0 1
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro

from wmpo_common.atomic_json import write_json
from wmpo_jobs.imagination_gap import load_and_measure
from wmpo_jobs.loop import finished_round, imagined_steps


@dataclass
class KeyframeGapConfig:
    loop: str  # a loop run's folder (wmpo loop / make demo's runs/loop_demo/loop), round 0 finished
    fractions: list[float] = field(default_factory=lambda: [0.0, 1.0])  # real_context_fraction values
    seeds: list[int] = field(default_factory=lambda: [0])  # imagination seeds (keyframe draws and sampling)
    output: str = ""  # JSON of every measurement ('' = <loop>/keyframe_gap.json)


def main(config: KeyframeGapConfig) -> None:
    loop = Path(config.loop)
    settings, phases = finished_round(loop, 0)
    torch.set_num_threads(settings.threads)

    world_model, reward = phases["align"]["world_model"], phases["threshold"]["reward_model"]
    cases = {  # policy, its real episodes, the temperature they were run at
        "before": (settings.policy, phases["collect"]["dataset"], settings.collect_temperature),
        "after": (phases["wmpo"]["policy"], phases["evaluate"]["dataset"], 0.0),
    }
    print("| policy | real_context_fraction | seed | episodes | imagined | real | gap |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for when, (policy, real, temperature) in cases.items():
        for fraction in config.fractions:
            for seed in config.seeds:
                gap = load_and_measure(
                    policy,
                    world_model,
                    reward,
                    real,
                    settings.device,
                    max_steps=imagined_steps(settings, real),
                    temperature=temperature,
                    bound=settings.gap_bound,
                    sampler_steps=settings.sampler_steps,
                    seed=seed,
                    real_context_fraction=fraction,
                )
                rows.append({"policy": when, "seed": seed, **gap.to_dict()})
                print(
                    f"| {when} | {fraction:.1f} | {seed} | {gap.episodes} | {gap.imagined_rate:.2f} | "
                    f"{gap.real_rate:.2f} | {gap.gap:+.2f} |",
                    flush=True,
                )
    print(f"wrote {write_json(config.output or loop / 'keyframe_gap.json', rows)}")


if __name__ == "__main__":
    main(tyro.cli(KeyframeGapConfig))
