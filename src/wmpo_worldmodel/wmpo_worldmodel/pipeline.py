"""WorldModelPipeline (a diffusers DiffusionPipeline): context frames + actions -> next frames.

A checkpoint is one folder: model_index.json (with the context-noise level and the action
statistics), unet/ (ActionConditionedUNet, safetensors), scheduler/ (the training schedule) and,
for a latent world model, vae/ (AutoencoderKL). It is written atomically.

Frames at the API are uint8 (B, T, H, W, 3) RGB, actions are in controller units (B, T, 7); the
pipeline normalises actions with its own q01/q99 statistics, so any policy's actions can drive it.
"""

import inspect
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from wmpo_common.actions import ActionStats
from wmpo_common.atomic_folder import atomic_folder
from wmpo_worldmodel.data import resize_frames
from wmpo_worldmodel.models import ActionConditionedUNet
from wmpo_worldmodel.schedulers import make_sampler


class WorldModelError(ValueError):
    """A world-model checkpoint or input that cannot be used; the text says why."""


def to_model_frames(frames: np.ndarray, size: int, device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, size, size) in [-1, 1] (antialiased resize)."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise WorldModelError(f"frames must be uint8 (B, T, H, W, 3), got {frames.shape} {frames.dtype}")
    batch, steps = frames.shape[:2]
    return resize_frames(frames.reshape(-1, *frames.shape[2:]), size).to(device).unflatten(0, (batch, steps))


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """float (B, T, 3, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3)."""
    return ((frames.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


class WorldModelPipeline(DiffusionPipeline):
    _optional_components = ["vae"]

    def __init__(
        self,
        unet: ActionConditionedUNet,
        scheduler: SchedulerMixin,
        vae: AutoencoderKL | None = None,
        context_noise_level: int = 15,
        action_stats: dict | None = None,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)
        self.register_to_config(context_noise_level=context_noise_level, action_stats=action_stats)

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def stats(self) -> ActionStats:
        if not self.config.action_stats:
            raise WorldModelError("this world model has no action statistics")
        return ActionStats(tuple(self.config.action_stats["q01"]), tuple(self.config.action_stats["q99"]))

    def save_atomically(self, path: str | Path, extra: dict[str, dict] | None = None) -> Path:
        """save_pretrained into a temporary folder, then rename into place. ``extra`` maps file
        names to state dicts saved with torch.save inside it (load with weights_only=True)."""
        with atomic_folder(path) as tmp:
            self.save_pretrained(tmp, safe_serialization=True)
            for name, state in (extra or {}).items():
                torch.save(state, tmp / name)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "WorldModelPipeline":
        """Load a checkpoint folder (local files only); WorldModelError if it is not one."""
        path = Path(path)
        if not (path / "model_index.json").is_file():
            raise WorldModelError(f"{path} is not a world-model checkpoint: model_index.json is missing")
        try:
            pipeline = cls.from_pretrained(path, local_files_only=True, use_safetensors=True)
        except Exception as error:  # noqa: BLE001  corrupt files raise many types (safetensors, json, torch)
            raise WorldModelError(f"cannot load the world model {path}: {error}") from error
        return pipeline.to(device)

    # -- latent space ------------------------------------------------------------------------
    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell (1 without a VAE)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) pixels -> the model's space (latents when there is a VAE)."""
        if self.vae is None:
            return frames
        batch, steps = frames.shape[:2]
        latents = self.vae.encode(frames.flatten(0, 1)).latent_dist.mode() * self.vae.config.scaling_factor
        return latents.unflatten(0, (batch, steps))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return latents
        batch, steps = latents.shape[:2]
        frames = self.vae.decode(latents.flatten(0, 1) / self.vae.config.scaling_factor).sample
        return frames.unflatten(0, (batch, steps))

    # -- one denoising pass ------------------------------------------------------------------
    @torch.no_grad()
    def denoise(
        self,
        context: torch.Tensor,
        actions: torch.Tensor,
        num_inference_steps: int = 10,
        sampler: str = "ddim",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """context (B, Nc, C, h, w) in model space, actions (B, F, D) normalised -> (B, F, C, h, w)."""
        config = self.unet.config
        batch = context.shape[0]
        scheduler = make_sampler(sampler, self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=context.device)
        shape = (batch, config.frames_per_pass, *context.shape[2:])
        sample = torch.randn(shape, generator=generator, device="cpu").to(context.device)
        sample = sample * scheduler.init_noise_sigma
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        level = torch.full((batch,), self.config.context_noise_level, device=context.device, dtype=torch.long)
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(sample, t)
            timestep = t.expand(batch).to(context.device)
            prediction = self.unet(model_input, timestep, context, actions, level)
            sample = scheduler.step(prediction, t, sample, **step_kwargs).prev_sample
        return sample

    @torch.no_grad()
    def __call__(
        self,
        context_frames: np.ndarray,
        actions: np.ndarray,
        num_inference_steps: int = 10,
        sampler: str = "ddim",
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """uint8 context (B, Nc, H, W, 3), any size, + actions (B, T, 7) in controller units ->
        uint8 (B, T, S, S, 3) at the model's size S: frame t is the observation after action t.
        T is any multiple of frames_per_pass; each pass takes the last Nc frames (context, then
        predictions) as its context."""
        config = self.unet.config
        actions = np.asarray(actions)
        if actions.ndim != 3 or actions.shape[-1] != config.action_dim or not np.all(np.isfinite(actions)):
            raise WorldModelError(f"actions must be finite (B, T, {config.action_dim}), got {actions.shape}")
        if actions.shape[1] % config.frames_per_pass:
            raise WorldModelError(f"T = {actions.shape[1]} is not a multiple of {config.frames_per_pass}")
        if context_frames.shape[1] != config.context_frames:
            raise WorldModelError(f"need {config.context_frames} context frames, got {context_frames.shape[1]}")
        normalized = torch.as_tensor(self.stats.normalize(actions), dtype=torch.float32, device=self.device)
        frames = self.encode(
            to_model_frames(context_frames, self.unet.config.sample_size * self.vae_scale, self.device)
        )
        produced = []
        for start in range(0, actions.shape[1], config.frames_per_pass):
            chunk_actions = normalized[:, start : start + config.frames_per_pass]
            new = self.denoise(
                frames[:, -config.context_frames :], chunk_actions, num_inference_steps, sampler, generator
            )
            produced.append(new)
            frames = torch.cat([frames, new], dim=1)
        return to_uint8_frames(self.decode(torch.cat(produced, dim=1)))
