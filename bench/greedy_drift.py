"""How far did an RL update move a policy's greedy actions along trajectories it used to succeed on?

GRPO's clipped ratio bounds how much the probability of a *sampled* token changes (at the sampling
temperature); a greedy evaluation instead takes the arg-max bin, which flips as soon as two bins'
logits swap. This replays the recorded episodes of one dataset (e.g. the base policy's successful
evaluation episodes) teacher-forced through each checkpoint and reports, on the executed action
tokens: the share whose arg-max bin is still the recorded one, how many bins a flipped token moved
(mean), the flipped share per action dimension, the share of chunks with at least one flipped
token (a chunk is 8 steps of open-loop actions), and the ratio of the recorded tokens'
probabilities to the reference's at the GRPO temperature (mean, and the largest |log ratio|).
The reference itself should keep (almost) every token: a recorded bin differs from its greedy bin
only where the safety filter clipped the action.

  python bench/greedy_drift.py --dataset runs/table1_square/NutAssemblySquare/base_eval/dataset \
      --reference runs/square_cont/bc/checkpoints/step_4000 \
      --checkpoints iter_1=runs/table1_square/NutAssemblySquare/seed_0/wmpo/round_0/wmpo/checkpoints/iter_1
"""

import argparse
from pathlib import Path

import torch

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import GRPOConfig
from wmpo_trainer.greedy_drift import greedy_drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="an episode dataset (wmpo episodes to-dataset)")
    parser.add_argument("--outcome", default="success", choices=("success", "failure", "any"))
    parser.add_argument("--reference", required=True, help="the policy that recorded the episodes")
    parser.add_argument("--checkpoints", nargs="+", default=[], metavar="NAME=PATH")
    parser.add_argument("--temperature", type=float, default=GRPOConfig.temperature, help="for the ratios (GRPO's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = EpisodeDataset(Path(args.dataset))
    episodes = [i for i, r in enumerate(data.records) if args.outcome in ("any", r.outcome)]
    if not episodes:
        raise SystemExit(f"{args.dataset} has no {args.outcome} episode")
    reference = VLAPolicy.from_pretrained(args.reference)
    policies = {"reference": reference}
    for item in args.checkpoints:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"--checkpoints takes NAME=PATH, got {item!r}")
        policies[name] = VLAPolicy.from_pretrained(path)

    print(f"{len(episodes)} {args.outcome} episodes of {args.dataset}, temperature {args.temperature}")
    print(
        "| checkpoint | recorded arg-max kept | bins moved per flip | flipped per action dimension "
        "| chunks with a flipped token | mean ratio | max abs log ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, policy in policies.items():
        drift = greedy_drift(reference, policy, data, episodes, args.temperature)
        per_dim = " ".join(f"{share:.3f}" for share in drift.flipped_per_dimension)
        print(
            f"| {name} | {drift.kept:.3f} | {drift.bins_per_flip:.1f} | {per_dim} "
            f"| {drift.chunks_flipped}/{drift.chunks} | {drift.mean_ratio:.4f} | {drift.max_abs_log_ratio:.3f} |"
        )


if __name__ == "__main__":
    main()
