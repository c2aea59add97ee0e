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
from wmpo_trainer.real_trajectories import episode_chunks


@torch.no_grad()
def replay(policy: VLAPolicy, observations, instruction: str, bins: torch.Tensor, temperature: float):
    """Teacher-forced (arg-max bins (C, K*D), log-probs of ``bins`` at ``temperature`` (C, K*D))."""
    inputs = policy.encode(observations, [instruction] * len(observations))
    logits = policy.model.action_logits(**inputs, action_bins=bins)
    logp = torch.log_softmax(logits / temperature, dim=-1).gather(-1, bins.unsqueeze(-1)).squeeze(-1)
    return logits.argmax(dim=-1), logp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="an episode dataset (wmpo episodes to-dataset)")
    parser.add_argument("--outcome", default="success", choices=("success", "failure", "any"))
    parser.add_argument("--reference", required=True, help="the policy that recorded the episodes")
    parser.add_argument("--checkpoints", nargs="+", default=[], metavar="NAME=PATH")
    parser.add_argument("--temperature", type=float, default=1.6, help="for the ratios (GRPO's sampling one)")
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
    recorded = [episode_chunks(reference, data, i) for i in episodes]
    instructions = [data.records[i].instruction for i in episodes]
    references = [
        replay(reference, o, t, b, args.temperature)[1] for (o, b, _), t in zip(recorded, instructions, strict=True)
    ]
    dims = reference.model.config.action_dim

    print(f"{len(episodes)} {args.outcome} episodes of {args.dataset}, temperature {args.temperature}")
    print(
        "| checkpoint | recorded arg-max kept | bins moved per flip | flipped per action dimension "
        "| chunks with a flipped token | mean ratio | max abs log ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, policy in policies.items():
        policy.model.eval()
        kept = tokens = flipped = chunks = moved = 0
        flips_per_dim, tokens_per_dim = torch.zeros(dims), torch.zeros(dims)
        ratios, largest = [], 0.0
        for (observations, bins, mask), instruction, old in zip(recorded, instructions, references, strict=True):
            greedy, logp = replay(policy, observations, instruction, bins, args.temperature)
            same = (greedy == bins) | ~mask
            kept += int(same[mask].sum())
            moved += int((greedy - bins).abs()[~same].sum())
            flips_per_dim += (~same).view(len(bins), -1, dims).sum(dim=(0, 1))
            tokens_per_dim += mask.view(len(bins), -1, dims).sum(dim=(0, 1))
            tokens += int(mask.sum())
            flipped += int((~same).any(dim=1).sum())
            chunks += len(bins)
            log_ratio = (logp - old)[mask]
            ratios.append(log_ratio.exp())
            largest = max(largest, float(log_ratio.abs().max()))
        ratio = float(torch.cat(ratios).mean())
        per_flip = moved / max(1, tokens - kept)
        per_dim = " ".join(f"{share:.3f}" for share in (flips_per_dim / tokens_per_dim.clamp(min=1)).tolist())
        print(
            f"| {name} | {kept / tokens:.3f} | {per_flip:.1f} | {per_dim} | {flipped}/{chunks} | {ratio:.4f} "
            f"| {largest:.3f} |"
        )


if __name__ == "__main__":
    main()
