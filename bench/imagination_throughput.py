"""Imagination throughput of the world model: frames/s against sampler steps, a chunk per
denoising pass vs a frame per pass, pixel vs latent space, and memory; side by side in one run.

  .venv/bin/python bench/imagination_throughput.py [--batch 8] [--frames 16] [--threads 2] [--device cpu]

Models are untrained (throughput does not depend on the weights) at the default CPU sizes. Each
configuration runs in its own process, so its peak memory (RSS, and CUDA memory on a GPU) is its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = [
    {"name": "pixel, chunk/pass, 2 steps", "space": "pixel", "frames_per_pass": 8, "steps": 2},
    {"name": "pixel, chunk/pass, 5 steps", "space": "pixel", "frames_per_pass": 8, "steps": 5},
    {"name": "pixel, chunk/pass, 10 steps", "space": "pixel", "frames_per_pass": 8, "steps": 10},
    {"name": "pixel, chunk/pass, 20 steps", "space": "pixel", "frames_per_pass": 8, "steps": 20},
    {"name": "pixel, frame/pass, 10 steps", "space": "pixel", "frames_per_pass": 1, "steps": 10},
    {"name": "latent, chunk/pass, 10 steps", "space": "latent", "frames_per_pass": 8, "steps": 10},
    {"name": "latent, frame/pass, 10 steps", "space": "latent", "frames_per_pass": 1, "steps": 10},
]


def measure(config: dict, batch: int, frames: int, device: str) -> dict:
    import numpy as np
    import torch
    from diffusers import AutoencoderKL

    from wmpo_worldmodel.models import ActionConditionedUNet
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.schedulers import training_scheduler

    torch.manual_seed(0)
    vae = None
    if config["space"] == "latent":
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(32, 64, 64),
            latent_channels=4,
            sample_size=64,
        )
    unet = ActionConditionedUNet(
        sample_size=64 if vae is None else 16,
        channels=3 if vae is None else 4,
        frames_per_pass=config["frames_per_pass"],
        block_out_channels=(32, 64, 64),
    )
    stats = {"q01": [-1.0] * 7, "q99": [1.0] * 7}
    pipeline = WorldModelPipeline(unet, training_scheduler(), vae=vae, action_stats=stats).to(device)
    context = np.random.default_rng(0).integers(0, 256, (batch, 4, 64, 64, 3), dtype=np.uint8)
    actions = np.zeros((batch, frames, 7))
    pipeline(context, actions[:, : config["frames_per_pass"]], 1)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    pipeline(context, actions, config["steps"], generator=torch.Generator().manual_seed(0))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {
        **config,
        "frames_per_s": batch * frames / elapsed,
        "seconds": elapsed,
        "unet_params_m": sum(p.numel() for p in unet.parameters()) / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="rollouts imagined together")
    parser.add_argument("--frames", type=int, default=16, help="frames per rollout (a multiple of 8)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration
    args = parser.parse_args()
    if args.one:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(json.loads(args.one), args.batch, args.frames, args.device)))
        return 0

    rows = []
    for config in CONFIGS:
        command = [sys.executable, __file__, "--one", json.dumps(config)]
        command += ["--batch", str(args.batch), "--frames", str(args.frames), "--threads", str(args.threads)]
        command += ["--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  measured {config['name']}", file=sys.stderr)
    base = next(r for r in rows if r["name"] == "pixel, chunk/pass, 10 steps")
    title = f"Imagination throughput: batch {args.batch}, {args.frames} frames each, {args.device}"
    print(f"\n{title}, {args.threads} threads")
    print(f"{'configuration':32s} {'frames/s':>9s} {'vs pixel chunk 10':>18s} {'UNet M':>7s} {'peak RSS MB':>12s}")
    for r in rows:
        ratio = r["frames_per_s"] / base["frames_per_s"]
        figures = f"{r['frames_per_s']:9.1f} {ratio:17.2f}x {r['unet_params_m']:7.2f} {r['peak_rss_mb']:12.0f}"
        print(f"{r['name']:32s} {figures}")
    chunk = base["frames_per_s"]
    frame = next(r for r in rows if r["name"] == "pixel, frame/pass, 10 steps")["frames_per_s"]
    latent = next(r for r in rows if r["name"] == "latent, chunk/pass, 10 steps")["frames_per_s"]
    print(f"\nchunk per pass vs frame per pass (pixel, 10 steps): {chunk / frame:.1f}x")
    print(f"latent vs pixel (chunk per pass, 10 steps): {latent / chunk:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
