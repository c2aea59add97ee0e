"""A base policy from nothing: scripted-expert demonstrations through the sim graph -> dataset ->
behaviour cloning. Every step is skipped when its output is complete, so a re-run resumes. The
sim graph's episodes are run by the ``EpisodeRunner`` the caller passes (wmpo_jobs.collector)."""

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from wmpo_jobs import JOBS
from wmpo_jobs.collector import EpisodeRunner, vla_policy_server
from wmpo_jobs.job_parts import BCPart

RECIPES = JOBS / "base_policy.yaml"


@dataclass
class BasePolicyConfig:
    """How a task's base policy is made (the recipe): scripted-expert demonstrations through the sim
    graph, then behaviour cloning. jobs/base_policy.yaml holds what differs per task."""

    demos: int = 200  # expert demonstrations (recorded, successes and failures)
    demo_seed: int = 0  # seed of the first demonstration (then +1 each)
    demo_max_steps: int = 300  # the expert's step budget, control steps (0 = the task's; Square's expert needs 130-220)
    # Behaviour cloning: the EfficientNet-Lite0 tower, 2 Llama layers, 5000 steps at batch 32
    # (measured: docs/results/base_policy.md).
    bc: BCPart = field(default_factory=lambda: BCPart(steps=5000, batch_size=32, text_layers=2))


def expert_dataset(task: str, folder: Path, recipe: BasePolicyConfig, run_episodes: EpisodeRunner) -> tuple[Path, dict]:
    """Record the demonstrations that are not on disk yet (a killed run resumes at the next seed)
    and convert them once; returns (dataset folder, {"episodes", "successes"} of the demos)."""
    from wmpo_episodes.bag_conversion import build_dataset
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_episodes.episodes import list_episodes

    bags = folder / "demos" / "episodes"
    seeds = range(recipe.demo_seed, recipe.demo_seed + recipe.demos)
    recorded = {e.summary["seed"] for e in list_episodes(bags) if e.outcome != "incomplete"}
    missing = [seed for seed in seeds if seed not in recorded]
    if missing:
        goals = [{"seed": seed, "max_steps": recipe.demo_max_steps, "record_mode": "all"} for seed in missing]
        run_episodes(task, goals, folder / "demos", {}, f"{task}: {len(goals)} expert demos")
    demos = [e for e in list_episodes(bags) if e.outcome != "incomplete" and e.summary["seed"] in seeds]
    data = folder / "data"
    if not (data / "episodes.json").is_file() or len(EpisodeDataset(data).records) != len(demos):
        shutil.rmtree(data, ignore_errors=True)  # derived from the bags: rebuilt when demos were added
        build_dataset(bags, data)
    return data, {"episodes": len(demos), "successes": sum(e.outcome == "success" for e in demos)}


def train_base_policy(
    task: str, folder: Path, recipe: BasePolicyConfig, threads: int, device: str, run_episodes: EpisodeRunner
) -> tuple[Path, dict]:
    """Demonstrations -> dataset -> BC under ``folder`` (demos/, data/, bc/); returns (checkpoint
    folder, the demos' summary)."""
    from wmpo_policy.train_bc import train

    dataset, expert = expert_dataset(task, Path(folder), recipe, run_episodes)
    bc = replace(recipe.bc, datasets=[str(dataset)], output=str(Path(folder) / "bc"), threads=threads, device=device)
    return train(bc), expert


@dataclass
class BasePolicyJob:
    """Per task: expert demonstrations -> dataset -> behaviour cloning -> greedy evaluation on
    held-out initial states; report.json. Each phase is skipped when its output is complete, so a
    re-run resumes. A task's recipe: BasePolicyConfig's defaults, then its entry in --recipes, then
    --config, then the --recipe.* options."""

    tasks: list[str] = field(default_factory=lambda: ["Lift", "NutAssemblySquare"])  # simulated tasks
    output: str = "runs/base"  # <output>/<task>/{demos,data,bc,eval} and <output>/report.json
    recipes: str = str(RECIPES)  # YAML of recipes keyed by task (what differs from the defaults below)
    recipe: BasePolicyConfig = field(default_factory=BasePolicyConfig)
    eval_init_states: str = "1000:1050"  # held-out initial-state ids, 'first:last' (last excluded) or 'a,b,c'
    # Evaluation budget, control steps (0 = the task's); a longer one also reports the successes
    # within the task's budget.
    eval_max_steps: int = 0
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device of behaviour cloning and of the policy server evaluating (cpu, cuda, cuda:N)


def run_base_policy(jobs: list[tuple[str, BasePolicyJob]], run_episodes: EpisodeRunner) -> dict:
    """Train and evaluate each task's base policy; returns report.json's content (printed too)."""
    import json
    import time

    from wmpo_common.atomic_json import write_json
    from wmpo_common.ranges import parse_range
    from wmpo_robot_io.sim.tasks import TASKS

    report_file = Path(jobs[0][1].output) / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    for task, job in jobs:
        folder = Path(job.output) / task
        started = time.monotonic()
        checkpoint, expert = train_base_policy(task, folder, job.recipe, job.threads, job.device, run_episodes)
        train_minutes = (time.monotonic() - started) / 60
        goals = [
            {"init_state_id": i, "max_steps": job.eval_max_steps, "record_mode": "all"}
            for i in parse_range(job.eval_init_states)
        ]
        server = vla_policy_server(checkpoint, 0.0, job.device)
        title = f"{task}: greedy base policy on initial states {job.eval_init_states}"
        evaluation = run_episodes(task, goals, folder / "eval", {"policy_server": server}, title)
        report[task] = {
            "demos": job.recipe.demos,
            "expert_successes": expert["successes"],
            "checkpoint": str(checkpoint),
            "bc_steps": job.recipe.bc.steps,
            "recipe": asdict(job.recipe),
            "train_minutes_this_run": round(train_minutes, 1),
            "eval_init_states": job.eval_init_states,
            "eval_max_steps": job.eval_max_steps or TASKS[task].max_steps,
            **{k: evaluation[k] for k in ("episodes", "successes", "success_rate", "success_rate_95ci")},
        }
        if job.eval_max_steps > TASKS[task].max_steps:  # a longer budget: the task's is read off the success steps
            budget = TASKS[task].max_steps
            steps = [r["summary"]["success_step"] for r in evaluation["results"]]
            report[task]["successes_within_task_budget"] = sum(0 <= s <= budget for s in steps)
    write_json(report_file, report)
    for task, row in report.items():
        low, high = row["success_rate_95ci"]
        within = row.get("successes_within_task_budget")
        print(
            f"{task}: {row['demos']} demos ({row['expert_successes']} successful), {row['bc_steps']} BC steps -> "
            f"{row['successes']}/{row['episodes']} on held-out states within {row['eval_max_steps']} steps "
            f"(95% CI {low:.2f}-{high:.2f})"
            + (f"; {within} within the task's {TASKS[task].max_steps}" if within is not None else "")
        )
    print(f"report: {report_file}")
    return report
