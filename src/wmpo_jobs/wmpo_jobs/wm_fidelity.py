"""``wmpo wm-fidelity``: trained world models (and a reward model) measured on held-out real
episodes, frame fidelity and outcome agreement, by wmpo_worldmodel.fidelity's report."""

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FidelityConfig:
    """Trained world models on held-out real episodes: frame fidelity and outcome agreement."""

    world_model: list[str]  # NAME=CHECKPOINT, one or more (the report's rows)
    held_out: str  # dataset folder of real episodes no model trained on
    reward_model: str = ""  # VideoRewardModel folder that judges the imagined episodes (outcome agreement)
    output: str = "runs/wm_fidelity"  # folder of report.md, report.json and the plots
    episodes: int = 16  # held-out episodes, spread over the set (0 = all)
    sampler_steps: int = 10  # denoising steps per imagined chunk
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)


def run_wm_fidelity(config: FidelityConfig) -> Path:
    """Load the models, imagine the held-out episodes, write the report; returns report.md."""
    import torch

    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_worldmodel.fidelity import write_report
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(config.threads)
    variants = {}
    for item in config.world_model:
        name, separator, path = item.partition("=")
        if not separator or not name or not path:
            raise SystemExit(f"--world-model takes NAME=CHECKPOINT, got {item!r}")
        variants[name] = WorldModelPipeline.load(path, config.device)
    reward = VideoRewardModel.from_pretrained(config.reward_model, config.device) if config.reward_model else None
    held_out = EpisodeDataset(Path(config.held_out))
    output = Path(config.output)
    write_report(variants, held_out, output, reward, config.episodes, sampler_steps=config.sampler_steps)
    return output / "report.md"
