"""glibc's default allocator against ``reuse_freed_memory`` (wmpo_common/cpu_memory.py), side by side.

Each workload runs twice in a fresh process, once with glibc's defaults and once after
``reuse_freed_memory()``, on the same seed and thread count: wall, user and system CPU seconds, and
peak resident memory, with the ratios (reuse / default). Workloads:
- keypoint_judge: reward-model training steps (keypoint backbone at the camera's 128 px; the loop
  judges at 64 px), 16 clips of 8 frames;
- world_model: world-model UNet training steps (WMConfig's defaults: 64 px, batch 8).

  python bench/cpu_memory.py --steps 10 --threads 2
"""

import argparse
import json
import resource
import subprocess
import sys
import time

from wmpo_worldmodel.configs import WMConfig


def keypoint_judge(steps: int) -> None:
    import numpy as np

    from wmpo_worldmodel.reward_model import VideoRewardModel
    from wmpo_worldmodel.train_reward import Clip, fit_clips

    rng = np.random.default_rng(0)
    episodes = rng.integers(0, 256, (4, 40, 128, 128, 3), dtype=np.uint8)
    clips = [Clip(0, e, int(end), e % 2) for e in range(4) for end in (10, 20, 30, 39)]
    reward = VideoRewardModel.fresh("keypoints", 128, 8)
    fit_clips(reward, clips, lambda clip: episodes[clip.episode], steps, 16, 3e-4, rng)


def world_model(steps: int) -> None:
    import torch

    from wmpo_worldmodel.train_world_model import fresh_unet

    config = WMConfig(datasets=[])
    unet = fresh_unet(config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    b, f, s = config.batch_size, config.frames_per_pass, config.image_size
    for _ in range(steps):
        prediction = unet(
            torch.randn(b, f, 3, s, s),
            torch.randint(0, 1000, (b,)),
            torch.randn(b, config.context_frames, 3, s, s),
            torch.rand(b, f, 7) * 2 - 1,
            torch.full((b,), config.context_noise_level),
        )
        loss = prediction.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


WORKLOADS = {"keypoint_judge": keypoint_judge, "world_model": world_model}


def worker(workload: str, allocator: str, steps: int, threads: int) -> None:
    """Run one workload in this process and print its measurements as one JSON line."""
    if allocator == "reuse":
        from wmpo_common.cpu_memory import reuse_freed_memory

        if not reuse_freed_memory():
            raise SystemExit("reuse_freed_memory did not take effect (not glibc?)")
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    WORKLOADS[workload](1)  # warm-up: imports, first allocations
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    WORKLOADS[workload](steps)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "user_s": after.ru_utime - before.ru_utime,
                "system_s": after.ru_stime - before.ru_stime,
                "peak_rss_mib": after.ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="training steps per workload")
    parser.add_argument("--threads", type=int, default=WMConfig.threads, help="torch CPU threads")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "ALLOCATOR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.steps, args.threads)
        return
    print(f"{args.steps} steps, {args.threads} threads; ratio = reuse / default")
    print("| workload | allocator | wall s | user s | system s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for workload in args.workloads:
        rows = {}
        for allocator in ("default", "reuse"):
            command = [sys.executable, __file__, "--worker", workload, allocator]
            command += ["--steps", str(args.steps), "--threads", str(args.threads)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows[allocator] = row = json.loads(output.strip().splitlines()[-1])
            cells = " | ".join(f"{row[k]:.1f}" for k in ("wall_s", "user_s", "system_s", "peak_rss_mib"))
            print(f"| {workload} | {allocator} | {cells} |", flush=True)
        ratios = " | ".join(
            f"{rows['reuse'][k] / max(rows['default'][k], 1e-9):.2f}"
            for k in ("wall_s", "user_s", "system_s", "peak_rss_mib")
        )
        print(f"| {workload} | ratio | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
