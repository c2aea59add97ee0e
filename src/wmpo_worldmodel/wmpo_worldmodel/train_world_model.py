"""Train the action-conditioned world model on converted episode datasets, top to bottom (CleanRL).

  wmpo train-wm --dataset runs/base/Lift/data --output runs/wm/lift --steps 3000
  wmpo train-wm --dataset runs/loop/rollouts --init-checkpoint runs/wm/lift/checkpoints/step_3000 ...

Pretraining uses expert demonstrations; policy-behaviour alignment continues from a pretrained
checkpoint on the policy's own rollouts (successes and failures). Loss: MSE of the schedule's
prediction target (the clean frames by default; see schedulers.training_scheduler). The context
frames are noised to ``context_noise_level`` (a diffusion timestep, 0 = clean) and the model is
told that level, as at inference. EMA weights are what a checkpoint
serves; the raw weights, optimizer and EMA state resume training. Every ``strip_every`` steps a
strip of real vs imagined frames (real actions) goes to TensorBoard and <output>/strips/.
"""

import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.training_utils import EMAModel
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from wmpo_common.actions import ActionStats
from wmpo_common.atomic_json import write_json
from wmpo_common.configs import continued_config
from wmpo_worldmodel.configs import WMConfig
from wmpo_worldmodel.data import WindowSampler
from wmpo_worldmodel.models import ActionConditionedUNet
from wmpo_worldmodel.pipeline import WorldModelPipeline
from wmpo_worldmodel.schedulers import diffusion_target, noise_context, training_scheduler

TRAINER_STATE = "trainer_state.pt"


def checkpoint_architecture(pipeline: WorldModelPipeline) -> dict:
    """The WMConfig architecture fields a trained world model was built with."""
    unet = pipeline.unet.config
    return {
        "image_size": unet.sample_size * pipeline.vae_scale,
        "context_frames": unet.context_frames,
        "frames_per_pass": unet.frames_per_pass,
        "context_noise_level": pipeline.config.context_noise_level,
        "block_out_channels": list(unet.block_out_channels),
        "attention_levels": list(unet.attention_levels),
        "action_modulation": unet.action_modulation,
        "action_planes": unet.action_planes,
    }


def continued_world_model(config: WMConfig, pipeline: WorldModelPipeline, path: Path, resumed: bool) -> WMConfig:
    """``config`` with the architecture of the checkpoint it continues (``path``); a conflicting
    option, or a --vae the checkpoint was not built with, is refused (ConfigError)."""
    conflicts = []
    if config.vae and (pipeline.vae is None or not resumed):
        conflicts.append(f"vae {config.vae!r} (the checkpoint's: {'its own' if pipeline.vae else 'none, pixels'})")
    return continued_config(config, checkpoint_architecture(pipeline), path, "world model", conflicts)


def latest_checkpoint(output: Path) -> Path | None:
    checkpoints = sorted((output / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return checkpoints[-1] if checkpoints else None


def strip_image(real: np.ndarray, imagined: np.ndarray) -> np.ndarray:
    """Two uint8 (T, H, W, 3) sequences -> one (2H, T*W, 3) image: real on top, imagined below."""
    return np.concatenate([np.concatenate(list(real), axis=1), np.concatenate(list(imagined), axis=1)], axis=0)


def fresh_unet(config: WMConfig, vae: AutoencoderKL | None = None) -> ActionConditionedUNet:
    """A new denoiser of ``config``'s architecture, on pixels or on ``vae``'s latents."""
    scale = 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)
    return ActionConditionedUNet(
        sample_size=config.image_size // scale,
        channels=3 if vae is None else vae.config.latent_channels,
        context_frames=config.context_frames,
        frames_per_pass=config.frames_per_pass,
        block_out_channels=tuple(config.block_out_channels),
        attention_levels=tuple(config.attention_levels),
        action_modulation=config.action_modulation,
        action_planes=config.action_planes,
    )


def train(config: WMConfig) -> Path:
    # -- set-up: seeds, threads, data ------------------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)

    # -- model: resume, or continue a world model (its architecture), or build a fresh one --------
    resume = latest_checkpoint(output)
    if resume is not None or config.init_checkpoint:
        path = resume or Path(config.init_checkpoint)
        pipeline = WorldModelPipeline.load(path, config.device)
        config = continued_world_model(config, pipeline, path, resumed=resume is not None)
    write_json(output / "wm_config.json", asdict(config))
    data = WindowSampler(config.datasets, config.context_frames, config.frames_per_pass, config.image_size)
    if resume is None and not config.init_checkpoint:
        stats = ActionStats.from_actions(data.all_actions())
        vae = AutoencoderKL.from_pretrained(config.vae, local_files_only=True) if config.vae else None
        unet = fresh_unet(config, vae)
        pipeline = WorldModelPipeline(
            unet.to(config.device),
            training_scheduler(),
            vae=None if vae is None else vae.to(config.device),
            context_noise_level=config.context_noise_level,
            action_stats={"q01": list(stats.q01), "q99": list(stats.q99)},
        )
    unet, scheduler, stats = pipeline.unet, pipeline.scheduler, pipeline.stats
    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True)  # follows closely early on
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=0.01)
    step = 0
    if resume is not None:
        state = torch.load(resume / TRAINER_STATE, weights_only=True)
        unet.load_state_dict(state["unet"])  # the folder holds EMA weights; training goes on from the raw ones
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
    rng = np.random.default_rng(config.seed + step)
    level = torch.full((config.batch_size,), pipeline.config.context_noise_level, dtype=torch.long)
    writer = SummaryWriter(str(output / "tb"))
    strip_window = data.windows[0]
    print(
        f"{len(data.windows)} windows from {sum(len(d) for d in data.datasets)} episodes, "
        f"{sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters, starting at step {step}"
    )

    def save(step: int) -> Path:
        ema.store(unet.parameters())
        raw = {k: v.clone() for k, v in unet.state_dict().items()}
        ema.copy_to(unet.parameters())
        state = {
            "unet": raw,
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
        }
        path = pipeline.save_atomically(output / "checkpoints" / f"step_{step}", extra={TRAINER_STATE: state})
        ema.restore(unet.parameters())
        return path

    def write_strip(step: int) -> None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        unet.eval()
        context, real, actions = data.window(strip_window)
        imagined = pipeline(
            np.asarray(context)[None],
            actions[None],
            config.sampler_steps,
            config.sampler,
            torch.Generator().manual_seed(0),
        )[0]
        real_small = np.stack([np.asarray(Image.fromarray(f).resize(imagined.shape[1:3])) for f in np.asarray(real)])
        image = strip_image(real_small, imagined)
        (output / "strips").mkdir(exist_ok=True)
        Image.fromarray(image).save(output / "strips" / f"step_{step}.png")
        writer.add_image("wm/real_vs_imagined", image, step, dataformats="HWC")
        unet.train()
        ema.restore(unet.parameters())

    # -- training loop ----------------------------------------------------------------------------
    unet.train()
    started, last_log = time.monotonic(), step
    bar = tqdm(total=config.steps, initial=step, desc="world model", unit="step")
    while step < config.steps:
        context, target, actions = data.batch(config.batch_size, rng)
        with torch.no_grad():  # the VAE (if any) is frozen
            context, target = pipeline.encode(context.to(config.device)), pipeline.encode(target.to(config.device))
        actions = torch.as_tensor(stats.normalize(actions), dtype=torch.float32, device=config.device)
        noise = torch.randn_like(target)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), device=config.device)
        noisy = scheduler.add_noise(target, noise, t)
        context = noise_context(scheduler, context, pipeline.config.context_noise_level)
        prediction = unet(noisy, t, context, actions, level.to(config.device))
        loss = F.mse_loss(prediction, diffusion_target(scheduler, target, noise, t))
        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        ema.step(unet.parameters())
        step += 1
        bar.update(1)

        if step % config.log_every == 0 or step == config.steps:
            steps_per_second = (step - last_log) / (time.monotonic() - started)
            started, last_log = time.monotonic(), step
            writer.add_scalar("wm/loss", loss.item(), step)
            writer.add_scalar("wm/grad_norm", grad_norm.item(), step)
            writer.add_scalar("perf/steps_per_second", steps_per_second, step)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % config.strip_every == 0 or step == config.steps:
            write_strip(step)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save(step)
    bar.close()
    writer.close()
    final = latest_checkpoint(output)
    print(f"checkpoint: {final}")
    return final
