"""The main job (``make demo``): the WMPO loop from nothing on the simulated arm.

Scripted-expert demonstrations -> behaviour-cloned base policy -> world model pretrained on the
demonstrations -> ``wmpo_trainer.loop.run_loop`` (base evaluation, collect P episodes, align,
reward, GRPO in imagination, evaluation, deployment). Sizes come from one YAML
(``jobs/loop_demo.yaml`` by default); every step resumes from what is already on disk.
"""

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

DEFAULT_CONFIG = Path(str(resources.files("wmpo_bringup") / "jobs" / "loop_demo.yaml"))


@dataclass
class LoopDemoConfig:
    task: str = "Lift"
    demos: int = 40
    bc_steps: int = 1500
    bc_batch_size: int = 16
    wm_steps: int = 500
    budget: int = 16
    rounds: int = 1
    eval_init_states: str = "1000:1020"  # 'first:last', last excluded
    max_steps: int = 0  # step budget of the policy's episodes, real and imagined (0 = the task's)
    align_steps: int = 150
    reward_steps: int = 200
    wmpo_iterations: int = 2
    group_size: int = 4
    start_states: int = 4
    sampler_steps: int = 4
    threads: int = 2

    @classmethod
    def from_yaml(cls, path: Path) -> "LoopDemoConfig":
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown fields {', '.join(unknown)}")
        return cls(**values)


def run_loop_demo(config: LoopDemoConfig, output: Path) -> dict:
    """Run (or resume) everything under ``output``; returns the loop's summary."""
    from wmpo_bringup.base_policy import BasePolicyConfig, train_base_policy
    from wmpo_bringup.sim_episodes import SimCollector
    from wmpo_episodes.ranges import parse_range
    from wmpo_trainer.grpo import GRPOConfig
    from wmpo_trainer.loop import LoopConfig, run_loop
    from wmpo_worldmodel.train_world_model import WMConfig, train

    base = BasePolicyConfig(
        task=config.task,
        demos=config.demos,
        output=str(output / "base"),
        bc_steps=config.bc_steps,
        batch_size=config.bc_batch_size,
        threads=config.threads,
    )
    policy, _ = train_base_policy(base)
    demos = Path(base.output) / "data"
    pretraining = WMConfig(
        datasets=[str(demos)], output=str(output / "world_model"), steps=config.wm_steps, threads=config.threads
    )
    world_model = train(pretraining)
    loop = LoopConfig(
        task=config.task,
        policy=str(policy),
        world_model=str(world_model),
        demos=str(demos),
        output=str(output / "loop"),
        rounds=config.rounds,
        budget=config.budget,
        eval_init_states=parse_range(config.eval_init_states),
        max_steps=config.max_steps,
        align_steps=config.align_steps,
        reward_steps=config.reward_steps,
        wmpo_iterations=config.wmpo_iterations,
        grpo=GRPOConfig(group_size=config.group_size, start_states=config.start_states, mini_batch=32),
        sampler_steps=config.sampler_steps,
        threads=config.threads,
    )
    return run_loop(loop, SimCollector(), on_phase=lambda r, phase, _: print(f"round {r}: {phase} done"))
