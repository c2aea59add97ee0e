"""A base policy from nothing: scripted-expert demonstrations through the sim graph -> dataset ->
behaviour cloning. Every step is skipped when its output is complete, so a re-run resumes."""

import dataclasses
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from wmpo_bringup.sim_episodes import run_sim_episodes

RECIPES = Path(str(resources.files("wmpo_bringup") / "jobs" / "base_policy.yaml"))


@dataclass
class BasePolicyConfig:
    task: str
    demos: int  # expert demonstrations (recorded, successes and failures)
    output: str  # this task's folder: demos/ (bags), data/ (dataset), bc/ (checkpoints)
    demo_seed: int = 0  # seed of the first demonstration (then +1 each)
    demo_max_steps: int = 300  # the expert's step budget (0 = the task's; Square's expert needs 130-220)
    bc_steps: int = 5000
    batch_size: int = 32
    vision_tower: str = "efficientnet_lite0"
    image_size: int | None = None  # px, the policy's input (None: the tower's default)
    patch_size: int = 8  # px
    vision_layers: int | None = None  # None: the tiny VLA's 4
    text_layers: int | None = 2  # Llama decoder layers (None: the tiny VLA's 4)
    learning_rate: float = 5e-4  # BC peak learning rate
    chunk_aligned: bool = True  # False: BC learns from every frame, not only chunk starts
    threads: int = 2

    @classmethod
    def for_task(cls, task: str, output: str, recipes: Path = RECIPES, **overrides) -> "BasePolicyConfig":
        """The task's recipe from ``recipes`` (YAML keyed by task), then every override that is
        not None. Unknown tasks and fields are refused with the choices."""
        recipe = (yaml.safe_load(Path(recipes).read_text()) or {}).get(task)
        if recipe is None:
            raise ValueError(f"{recipes} has no recipe for {task!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(recipe) - fields)
        if unknown:
            raise ValueError(
                f"{recipes}: {task}: unknown fields {', '.join(unknown)}; fields: {', '.join(sorted(fields))}"
            )
        values = {**recipe, **{key: value for key, value in overrides.items() if value is not None}}
        return cls(task=task, output=output, **values)


def expert_dataset(config: BasePolicyConfig) -> tuple[Path, dict]:
    """Record the demonstrations that are not on disk yet (a killed run resumes at the next seed)
    and convert them once; returns (dataset folder, {"episodes", "successes"} of the demos)."""
    from wmpo_episodes.bag_conversion import build_dataset
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_episodes.episodes import list_episodes

    folder = Path(config.output)
    bags = folder / "demos" / "episodes"
    seeds = range(config.demo_seed, config.demo_seed + config.demos)
    recorded = {e.summary["seed"] for e in list_episodes(bags) if e.outcome != "incomplete"}
    missing = [seed for seed in seeds if seed not in recorded]
    if missing:
        goals = [{"seed": seed, "max_steps": config.demo_max_steps, "record_mode": "all"} for seed in missing]
        run_sim_episodes(config.task, goals, folder / "demos", {}, f"{config.task}: {len(goals)} expert demos")
    demos = [e for e in list_episodes(bags) if e.outcome != "incomplete" and e.summary["seed"] in seeds]
    data = folder / "data"
    if not (data / "episodes.json").is_file() or len(EpisodeDataset(data).records) != len(demos):
        shutil.rmtree(data, ignore_errors=True)  # derived from the bags: rebuilt when demos were added
        build_dataset(bags, data)
    return data, {"episodes": len(demos), "successes": sum(e.outcome == "success" for e in demos)}


def train_base_policy(config: BasePolicyConfig) -> tuple[Path, dict]:
    """Demonstrations -> dataset -> BC; returns (checkpoint folder, the demos' summary)."""
    from wmpo_policy.train_bc import BCConfig, train

    dataset, expert = expert_dataset(config)
    bc = BCConfig(
        datasets=[str(dataset)],
        output=str(Path(config.output) / "bc"),
        steps=config.bc_steps,
        batch_size=config.batch_size,
        vision_tower=config.vision_tower,
        image_size=config.image_size,
        patch_size=config.patch_size,
        vision_layers=config.vision_layers,
        text_layers=config.text_layers,
        learning_rate=config.learning_rate,
        chunk_aligned=config.chunk_aligned,
        threads=config.threads,
    )
    return train(bc), expert
