"""A base policy from nothing: scripted-expert demonstrations through the sim graph -> dataset ->
behaviour cloning. Every step is skipped when its output is complete, so a re-run resumes."""

import json
from dataclasses import dataclass
from pathlib import Path

from wmpo_bringup.sim_episodes import run_sim_episodes


@dataclass
class BasePolicyConfig:
    task: str
    demos: int  # expert demonstrations (recorded, successes and failures)
    output: str  # this task's folder: demos/ (bags), data/ (dataset), bc/ (checkpoints)
    demo_seed: int = 0  # seed of the first demonstration (then +1 each)
    demo_max_steps: int = 0  # the expert's step budget (0 = the task's)
    bc_steps: int = 1500
    batch_size: int = 32
    threads: int = 2


def expert_dataset(config: BasePolicyConfig) -> tuple[Path, dict]:
    """Record the demonstrations (unless already there) and convert them; returns (dataset, summary)."""
    from wmpo_episodes.dataset import build_dataset

    folder = Path(config.output)
    summary_file = folder / "demos" / "summary.json"
    if not summary_file.is_file() or json.loads(summary_file.read_text())["episodes"] != config.demos:
        goals = [
            {"seed": config.demo_seed + i, "max_steps": config.demo_max_steps, "record_mode": "all"}
            for i in range(config.demos)
        ]
        run_sim_episodes(config.task, goals, folder / "demos", {}, f"{config.task}: {config.demos} expert demos")
    if not (folder / "data" / "episodes.json").is_file():
        build_dataset(folder / "demos" / "episodes", folder / "data")
    return folder / "data", json.loads(summary_file.read_text())


def train_base_policy(config: BasePolicyConfig) -> tuple[Path, dict]:
    """Demonstrations -> dataset -> BC; returns (checkpoint folder, the demos' summary)."""
    from wmpo_policy.train_bc import BCConfig, train

    dataset, expert = expert_dataset(config)
    bc = BCConfig(
        dataset=str(dataset),
        output=str(Path(config.output) / "bc"),
        steps=config.bc_steps,
        batch_size=config.batch_size,
        threads=config.threads,
    )
    return train(bc), expert
