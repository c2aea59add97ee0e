"""The main job (``make demo``): the WMPO loop from nothing on the simulated arm.

Scripted-expert demonstrations -> behaviour-cloned base policy -> world model pretrained on the
demonstrations -> ``wmpo_jobs.loop.run_loop`` (base evaluation, collect P episodes, align,
reward, GRPO in imagination, evaluation, deployment). Sizes come from one YAML
(``jobs/loop_demo.yaml`` by default); every step resumes from what is already on disk. The sim
graph's episodes are run by the ``EpisodeRunner`` the caller passes (wmpo_jobs.collector).
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from wmpo_jobs import JOBS
from wmpo_jobs.base_policy import BasePolicyConfig
from wmpo_jobs.collector import EpisodeRunner
from wmpo_jobs.job_parts import LoopPart, WMPart

DEFAULT_CONFIG = JOBS / "loop_demo.yaml"


@dataclass
class LoopDemoConfig:
    """The main job (make demo): the WMPO loop from nothing on the simulated arm. Scripted-expert
    demonstrations -> behaviour-cloned base policy -> world model pretrained on the demonstrations
    -> the loop (wmpo loop): collect, align, reward, GRPO in imagination, evaluate, deploy. Every
    phase resumes from what is already under output."""

    task: str = "Lift"  # simulated task (wmpo_robot_io.sim.tasks)
    output: str = "runs/loop_demo"  # folder: base/ (demos, dataset, BC), world_model/, loop/ (report.md)
    base: BasePolicyConfig = field(default_factory=BasePolicyConfig)
    world_model: WMPart = field(default_factory=WMPart)
    loop: LoopPart = field(default_factory=LoopPart)
    threads: int = 2  # torch CPU threads of every phase
    device: str = "cpu"  # torch device of every phase and of the policy server (cpu, cuda, cuda:N)


def run_loop_demo(config: LoopDemoConfig, run_episodes: EpisodeRunner) -> dict:
    """Run (or resume) everything under ``config.output``; returns the loop's summary."""
    from wmpo_jobs.base_policy import train_base_policy
    from wmpo_jobs.collector import SimCollector
    from wmpo_jobs.loop import run_loop
    from wmpo_worldmodel.train_world_model import train

    output, runtime = Path(config.output), {"threads": config.threads, "device": config.device}
    policy, _ = train_base_policy(config.task, output / "base", config.base, **runtime, run_episodes=run_episodes)
    demos = output / "base" / "data"
    world_model = train(
        replace(config.world_model, datasets=[str(demos)], output=str(output / "world_model"), **runtime)
    )
    loop = replace(
        config.loop,
        task=config.task,
        policy=str(policy),
        world_model=str(world_model),
        demos=str(demos),
        output=str(output / "loop"),
        **runtime,
    )
    collect = SimCollector(run_episodes, config.device)
    return run_loop(loop, collect, on_phase=lambda r, phase, _: print(f"round {r}: {phase} done"))
