"""Train a small diffusers AutoencoderKL on episode frames: the optional latent space of the world
model (no pretrained VAE can be downloaded). Readable top to bottom (CleanRL).

  wmpo train-vae --dataset runs/base/Lift/data --output runs/vae/lift --steps 2000

Loss: pixel MSE + kl_weight * KL. 64 px frames -> 4 x 16 x 16 latents (two down-samplings). The
scaling factor is set from the latents' standard deviation at the end, so that scaled latents
have unit variance (what the diffusion schedule assumes). Writes <output>/vae (save_pretrained).
"""

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from wmpo_common.atomic_folder import atomic_folder
from wmpo_episodes.dataset import EpisodeDataset
from wmpo_worldmodel.configs import VAEConfig
from wmpo_worldmodel.data import resize_frames


def train(config: VAEConfig) -> Path:
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    output = Path(config.output)
    frames = [EpisodeDataset(Path(p)).frames for p in config.datasets]
    index = [(d, i) for d, f in enumerate(frames) for i in range(len(f))]
    levels = len(config.block_out_channels)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.block_out_channels),
        latent_channels=config.latent_channels,
        norm_num_groups=min(32, config.block_out_channels[0]),
        sample_size=config.image_size,
    ).to(config.device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.learning_rate)
    writer = SummaryWriter(str(output / "tb"))

    def batch() -> torch.Tensor:
        picks = [index[i] for i in rng.integers(0, len(index), config.batch_size)]
        return resize_frames(np.stack([frames[d][i] for d, i in picks]), config.image_size).to(config.device)

    for step in tqdm(range(1, config.steps + 1), desc="VAE", unit="step"):
        pixels = batch()
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        mse = F.mse_loss(reconstruction, pixels)
        kl = posterior.kl().mean() / pixels[0].numel()
        loss = mse + config.kl_weight * kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            writer.add_scalar("vae/mse", mse.item(), step)
            writer.add_scalar("vae/kl", kl.item(), step)

    with torch.no_grad():  # unit-variance latents for the diffusion schedule
        latents = torch.cat([vae.encode(batch()).latent_dist.mode() for _ in range(4)])
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    writer.close()
    path = output / "vae"
    with atomic_folder(path) as tmp:
        vae.save_pretrained(tmp, safe_serialization=True)
    print(f"VAE {path}: reconstruction MSE {mse.item():.4f}, scaling factor {vae.config.scaling_factor:.3f}")
    return path
