"""Behaviour cloning of the VLA on a converted episode dataset, readable top to bottom (CleanRL).

  wmpo train-bc --dataset runs/data/lift --output runs/bc/lift --steps 2000
  wmpo train-bc --dataset runs/data/square runs/data/square_dart --init-checkpoint <folder> ...

Each sample: the frame before step k and the K actions from step k on, as the policy commanded
them (the expert's plan, also where DART noise perturbed the executed actions; past the episode's
end the last action repeats; k a multiple of K unless chunk_aligned is off), drawn uniformly from
the samples of all the datasets together,
normalised with q01/q99 of the training actions and binned into tokens. Augmentation: random
crop of crop_scale of the area, resized back (OpenVLA).
Writes TensorBoard scalars to <output>/tb, checkpoints to <output>/checkpoints/step_N (+ the
optimizer state), and resumes from the newest checkpoint if there is one.
"""

import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from wmpo_common.actions import ActionStats
from wmpo_common.atomic_json import write_json
from wmpo_common.configs import continued_config
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.configs import BCConfig
from wmpo_policy.vla.action_tokens import actions_to_bins
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import CheckpointError, VLAPolicy
from wmpo_policy.vla.tokenization import build_tokenizer

TRAINER_STATE = "trainer_state.pt"


def chunk_targets(actions: np.ndarray, start: int, horizon: int) -> np.ndarray:
    """Actions [start, start + horizon) of one episode; the last one repeats past the end."""
    index = np.minimum(np.arange(start, start + horizon), len(actions) - 1)
    return actions[index]


def learning_rate_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0.1 of the peak at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def latest_checkpoint(output: Path) -> Path | None:
    checkpoints = sorted((output / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return checkpoints[-1] if checkpoints else None


def checkpoint_architecture(model: VLAConfig) -> dict:
    """The BCConfig architecture fields a VLA checkpoint was built with."""
    vision = model.vision_config
    tower = (
        {"patch_size": vision["patch_size"], "vision_layers": vision["num_hidden_layers"]}
        if model.vision_tower == "siglip"
        else {"vision_layers": None}  # SigLIP only
    )
    return {
        "vision_tower": model.vision_tower,
        "image_size": model.image_size,
        **tower,
        "text_layers": model.text_config["num_hidden_layers"],
        "decoding": model.decoding,
        "instruction_encoder": model.instruction_encoder,
    }


def continued_policy(config: BCConfig, path: Path) -> BCConfig:
    """``config`` with the architecture of the VLA checkpoint it starts from (``path``); an option
    that conflicts with it, or model_overrides, is refused (ConfigError) instead of being ignored."""
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} is not a VLA checkpoint: config.json is missing")
    model = VLAConfig.from_pretrained(path)
    own = [f"model_overrides {config.model_overrides!r} (the checkpoint's: its config.json)"]
    return continued_config(
        config, checkpoint_architecture(model), path, "policy", own if config.model_overrides else []
    )


def train(config: BCConfig) -> Path:
    if config.init_checkpoint:  # refused before anything is written
        config = continued_policy(config, Path(config.init_checkpoint))
    # -- set-up: seeds, threads, data ------------------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "bc_config.json", asdict(config))

    datasets = [EpisodeDataset(Path(path)) for path in config.datasets]
    episodes = [  # (dataset, episode index, its record)
        (data, i, r)
        for data in datasets
        for i, r in enumerate(data.records)
        if r.outcome == "success" or not config.only_successes
    ]
    if not episodes:
        raise ValueError(f"{config.datasets} have no episodes to learn from (only_successes={config.only_successes})")
    used_actions = np.concatenate([data.episode(i)["commanded"] for data, i, _ in episodes])

    # -- model: resume, or start from a checkpoint, or build a fresh one -------------------------
    resume = latest_checkpoint(output)
    if resume is not None:
        policy = VLAPolicy.from_pretrained(resume, config.device)
    elif config.init_checkpoint:
        policy = VLAPolicy.from_pretrained(config.init_checkpoint, config.device)
    else:
        tokenizer = build_tokenizer(sorted({r.instruction for _, _, r in episodes}))
        overrides = dict(config.model_overrides)
        vision = {} if config.image_size is None else {"image_size": config.image_size}
        text = {}
        if config.vision_tower == "siglip":
            vision["patch_size"] = config.patch_size
            if config.vision_layers is not None:
                vision["num_hidden_layers"] = config.vision_layers
        elif config.vision_layers is not None:
            raise ValueError(f"vision_layers is a SigLIP setting; the {config.vision_tower} tower has none")
        if config.text_layers is not None:
            text["num_hidden_layers"] = config.text_layers
        model_config = VLAConfig(
            vision_tower=config.vision_tower,
            vision_config={**vision, **overrides.pop("vision_config", {})},
            text_config={**text, **overrides.pop("text_config", {})},
            text_vocab_size=512,
            decoding=config.decoding,
            instruction_encoder=config.instruction_encoder,
            **overrides,
        )
        policy = VLAPolicy(
            VLAForActionPrediction.fresh(model_config), tokenizer, ActionStats.from_actions(used_actions)
        )
        policy.model.to(config.device)
    model, stats, horizon = policy.model.train(), policy.stats, policy.model.config.chunk_size
    stride = horizon if config.chunk_aligned else 1
    samples = [(data, i, r, k) for data, i, r in episodes for k in range(0, r.num_steps, stride)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: learning_rate_factor(s, config.warmup_steps, config.steps)
    )
    step = 0
    if resume is not None:
        state = torch.load(resume / TRAINER_STATE, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
    generator = torch.Generator().manual_seed(config.seed + step)
    rng = np.random.default_rng(config.seed + step)
    writer = SummaryWriter(str(output / "tb"))
    print(
        f"{len(episodes)} episodes, {len(samples)} samples, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters, starting at step {step}; normalisation {stats.id}"
    )

    # -- training loop ----------------------------------------------------------------------------
    started, last_log = time.monotonic(), step
    bar = tqdm(total=config.steps, initial=step, desc="BC", unit="step")
    while step < config.steps:
        batch = [samples[i] for i in rng.integers(0, len(samples), config.batch_size)]
        images, instructions, targets = [], [], []
        for data, i, record, k in batch:
            arrays = data.episode(i)
            images.append(arrays["frames"][k])
            instructions.append(record.instruction)
            targets.append(actions_to_bins(stats.normalize(chunk_targets(arrays["commanded"], k, horizon))).reshape(-1))
        inputs = policy.encode(np.stack(images), instructions, generator=generator)
        bins = torch.from_numpy(np.stack(targets)).to(config.device)
        logits = model.action_logits(**inputs, action_bins=bins)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), bins.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        step += 1
        bar.update(1)

        if step % config.log_every == 0 or step == config.steps:
            accuracy = (logits.argmax(-1) == bins).float().mean().item()
            steps_per_second = (step - last_log) / (time.monotonic() - started)
            started, last_log = time.monotonic(), step
            writer.add_scalar("bc/loss", loss.item(), step)
            writer.add_scalar("bc/token_accuracy", accuracy, step)
            writer.add_scalar("bc/grad_norm", grad_norm.item(), step)
            writer.add_scalar("bc/learning_rate", schedule.get_last_lr()[0], step)
            writer.add_scalar("perf/steps_per_second", steps_per_second, step)
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{accuracy:.2f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = {
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "step": step,
                "torch_rng": torch.get_rng_state(),
            }
            policy.save_pretrained(output / "checkpoints" / f"step_{step}", extra={TRAINER_STATE: state})
    bar.close()
    writer.close()
    final = latest_checkpoint(output)
    print(f"checkpoint: {final}")
    return final
