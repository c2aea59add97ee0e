"""VLA serving latency per chunk: p50/p99 at 128 and 224 px, batch 1 and 8, parallel (one forward
pass) vs autoregressive (56 passes with a KV cache) decoding, side by side, same model size.

  python bench/policy_latency.py [--repeats 20] [--threads 2] [--device cpu]
"""

import argparse
import time

import numpy as np
import torch

from wmpo_common.actions import ActionStats
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_policy.vla.tokenization import build_tokenizer


def measure(policy: VLAPolicy, batch: int, size: int, repeats: int) -> tuple[float, float]:
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    instructions = ["pick up the red cube"] * batch
    policy.predict(images, instructions)  # warm-up
    times = []
    for _ in range(repeats):
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        policy.predict(images, instructions)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1000), float(np.percentile(times, 99) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer(["pick up the red cube"])
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (100, 7)))
    print(f"{'px':>4} {'batch':>5} {'parallel p50/p99 ms':>21} {'autoregressive p50/p99 ms':>27} {'AR/parallel':>12}")
    for size in (128, 224):
        policies = {}
        for decoding in ("parallel", "autoregressive"):
            torch.manual_seed(0)
            config = VLAConfig(text_vocab_size=512, decoding=decoding, vision_config={"image_size": size})
            policies[decoding] = VLAPolicy(VLAForActionPrediction(config).to(args.device).eval(), tokenizer, stats)
        for batch in (1, 8):
            par = measure(policies["parallel"], batch, size, args.repeats)
            ar = measure(policies["autoregressive"], batch, size, args.repeats)
            print(
                f"{size:4d} {batch:5d} {par[0]:10.1f} / {par[1]:8.1f} {ar[0]:13.1f} / {ar[1]:9.1f} "
                f"{ar[0] / par[0]:11.1f}x"
            )
    params = sum(p.numel() for p in policies["parallel"].model.parameters()) / 1e6
    print(f"model: tiny default VLAConfig, {params:.1f} M parameters, device {args.device}, {args.threads} threads")


if __name__ == "__main__":
    main()
