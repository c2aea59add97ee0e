"""The action-conditioned video denoiser: a diffusers UNet2DModel over frames stacked as channels.

One denoising pass predicts ``frames_per_pass`` frames (a whole chunk of 8 by default, or 1 for a
frame-at-a-time model) from ``context_frames`` clean (or lightly noised) context frames.

Action conditioning, per frame, two ways (both on by default):
- AdaGN modulation (the conv-net form of AdaLN): an MLP maps the pass's K actions (K x D, in
  normalised units) and the context-noise level to an embedding added to the diffusion timestep
  embedding; every ResNet block turns it into a per-channel scale and shift (diffusers
  ``resnet_time_scale_shift="scale_shift"``).
- Action planes: frame k's D action values broadcast as D constant input channels next to frame
  k's noisy channels (the platform measurements found timestep-style conditioning alone barely
  moves objects at tiny scale; planes made rollouts follow every commanded direction).

Shapes: frames are (B, F, C, H, W) in [-1, 1] (pixels) or VAE latents; actions (B, F, D).
"""

import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from wmpo_common.actions import CHUNK_HORIZON


class ActionConditionedUNet(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        channels: int = 3,
        context_frames: int = 4,
        frames_per_pass: int = CHUNK_HORIZON,
        action_dim: int = 7,
        block_out_channels: tuple[int, ...] = (64, 128, 128),
        layers_per_block: int = 1,
        attention_levels: tuple[bool, ...] = (False, False, True),
        action_modulation: bool = True,
        action_planes: bool = True,
    ):
        super().__init__()
        if len(attention_levels) != len(block_out_channels):
            raise ValueError("attention_levels needs one entry per block")
        embed_dim = block_out_channels[0] * 4
        in_channels = channels * (context_frames + frames_per_pass) + (
            action_dim * frames_per_pass if action_planes else 0
        )
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=channels * frames_per_pass,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention_levels),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention_levels)),
            attention_head_dim=32,
            norm_num_groups=min(32, block_out_channels[0]),
            resnet_time_scale_shift="scale_shift",
            class_embed_type="identity",
        )
        # The context-noise level (a diffusion timestep) gets its own sinusoidal embedding.
        self.context_noise_proj = Timesteps(block_out_channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.context_noise_embedding = TimestepEmbedding(block_out_channels[0], embed_dim)
        self.action_mlp = (
            nn.Sequential(
                nn.Linear(action_dim * frames_per_pass, embed_dim),
                nn.SiLU(),
                nn.Linear(embed_dim, embed_dim),
            )
            if action_modulation
            else None
        )

    def forward(
        self,
        noisy_frames: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        actions: torch.Tensor,
        context_noise_level: torch.Tensor,
    ) -> torch.Tensor:
        """noisy_frames (B, F, C, H, W), timestep (B,), context (B, Nc, C, H, W), actions (B, F, D)
        normalised to [-1, 1], context_noise_level (B,) timesteps -> prediction (B, F, C, H, W)."""
        batch, frames, channels, height, width = noisy_frames.shape
        config = self.config
        if frames != config.frames_per_pass or context.shape[1] != config.context_frames:
            raise ValueError(
                f"expected {config.context_frames} context and {config.frames_per_pass} frames, "
                f"got {context.shape[1]} and {frames}"
            )
        if actions.shape != (batch, frames, config.action_dim):
            raise ValueError(f"actions must be {(batch, frames, config.action_dim)}, got {tuple(actions.shape)}")
        inputs = [context.flatten(1, 2), noisy_frames.flatten(1, 2)]
        if config.action_planes:
            inputs.append(actions.flatten(1, 2)[:, :, None, None].expand(-1, -1, height, width))
        level = self.context_noise_proj(context_noise_level.to(noisy_frames.device).expand(batch))
        conditioning = self.context_noise_embedding(level.to(noisy_frames.dtype))
        if self.action_mlp is not None:
            conditioning = conditioning + self.action_mlp(actions.flatten(1))
        out = self.unet(torch.cat(inputs, dim=1), timestep, class_labels=conditioning).sample
        return out.view(batch, frames, channels, height, width)
