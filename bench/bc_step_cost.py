"""Cost of one behaviour-cloning step per VLA configuration, side by side: vision tower, its input
size, Llama layers; a batch of 128 px frames (as recorded), crop augmentation, forward, backward and
AdamW, as ``wmpo_policy.train_bc`` runs them. Prints ms per sample, steps per hour and the samples
an hour buys relative to the first configuration.

  python bench/bc_step_cost.py [--configs siglip:64:4x4 efficientnet_lite0:128:2 conv_keypoints:84:2]
                               [--batch-size 32] [--repeats 5] [--threads 2]

A configuration is TOWER:IMAGE_SIZE:LLAMA_LAYERS, for SigLIP TOWER:IMAGE_SIZE:VISIONxLLAMA
(8 px patches).
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

INSTRUCTION = "insert the square into the stick"


def model_config(spec: str) -> VLAConfig:
    """'siglip:64:2x2' / 'efficientnet_lite0:128:2' -> the VLAConfig it names."""
    tower, size, layers = spec.split(":")
    vision = {"image_size": int(size)}
    if tower == "siglip":
        vision_layers, layers = layers.split("x")
        vision |= {"patch_size": 8, "num_hidden_layers": int(vision_layers)}
    return VLAConfig(
        vision_tower=tower, vision_config=vision, text_config={"num_hidden_layers": int(layers)}, text_vocab_size=512
    )


def step_seconds(config: VLAConfig, batch: int, repeats: int) -> tuple[float, float]:
    """Median seconds of one BC step, and the model's parameters (M)."""
    torch.manual_seed(0)
    stats = ActionStats.from_actions(np.random.default_rng(0).uniform(-1, 1, (100, 7)))
    policy = VLAPolicy(VLAForActionPrediction(config), build_tokenizer([INSTRUCTION]), stats)
    model = policy.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, (batch, 128, 128, 3), dtype=np.uint8)
    bins = torch.randint(0, 256, (batch, config.num_action_tokens), generator=generator)
    times = []
    for _ in range(repeats + 1):  # the first step warms up
        start = time.perf_counter()
        inputs = policy.encode(frames, [INSTRUCTION] * batch, generator=generator)
        logits = model.action_logits(**inputs, action_bins=bins)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), bins.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:])), sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs", nargs="+", default=["siglip:64:4x4", "efficientnet_lite0:128:2", "conv_keypoints:84:2"]
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"BC step, batch {args.batch_size}, {args.threads} threads")
    print("| tower:px:layers | parameters | s per step | ms per sample | steps per hour | samples/hour ratio |")
    print("|---|---|---|---|---|---|")
    first = None
    for spec in args.configs:
        seconds, params = step_seconds(model_config(spec), args.batch_size, args.repeats)
        first = first or seconds
        print(
            f"| {spec} | {params:.1f} M | {seconds:.2f} | {1000 * seconds / args.batch_size:.1f} | "
            f"{3600 / seconds:.0f} | {first / seconds:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
