"""Sim episodes per minute on 1, 2 and N sim graphs at once (Ray workers, wmpo_bringup.sim_workers),
side by side: the same goals (scripted expert, seeded scenes) for every worker count, each run
from nothing into its own folder; wall time from the call to the summary, graph and Ray start-up
included, as a collection pays it, and once the graphs are up (first episode's start to the last
one's end). Prints a markdown table with the ratios to 1 worker.

  python bench/parallel_episodes.py [--workers 1 2 4] [--episodes 12] [--task Lift] [--max-steps 100]
                                    [--image-size 64] [--ray-address ADDRESS] [--output runs/bench_parallel]

Default worker counts: 1, 2 and half this machine's cores (at most 16). The machine's load
average is printed beside the figures: other jobs on the cores slow every column.

Measured on the 2-core CI machine with other jobs running (load average ~7.7), --workers 1 2
--episodes 6: 1 worker 4.34 episodes/min (5.08 once up), 2 workers 2.84 (4.21 once up), ratio 0.65
(0.83): two sim graphs (about 8 processes each) and Ray's own processes on 2 busy cores cost more
than they overlap. Not measured yet on a many-core machine, where the workers are meant to pay.
"""

import argparse
import os
import shutil
import time
from pathlib import Path

from wmpo_bringup.sim_episodes import run_sim_episodes


def default_workers() -> list[int]:
    return sorted({1, 2, max(1, min(16, (os.cpu_count() or 2) // 2))})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=default_workers())
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--task", default="Lift")
    parser.add_argument("--seed", type=int, default=100, help="goal i runs the scene of seed + i")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster's workers (default: local)")
    parser.add_argument("--output", type=Path, default=Path("runs/bench_parallel"))
    args = parser.parse_args()
    goals = [{"seed": args.seed + i, "max_steps": args.max_steps, "record_mode": "all"} for i in range(args.episodes)]
    overrides = {"camera": {"image_size": args.image_size}}
    rows = []
    for workers in args.workers:
        output = args.output / f"workers_{workers}"
        shutil.rmtree(output, ignore_errors=True)  # from nothing: a resumed run would skip its episodes
        load = os.getloadavg()[0]
        started = time.monotonic()
        report = run_sim_episodes(
            args.task,
            goals,
            output,
            overrides,
            f"{args.task}: {len(goals)} episodes on {workers} sim graph(s)",
            workers=workers,
            ray_address=args.ray_address,
        )
        seconds = time.monotonic() - started
        outcomes = [r["summary"]["outcome"] for r in report["results"]]
        load = (load + os.getloadavg()[0]) / 2
        # From the first episode's start to the last one's end: the rate once the graphs are up.
        span = (
            max(r["summary"]["end_time"] for r in report["results"])
            - min(r["summary"]["start_time"] for r in report["results"])
        ) / 1e9
        rows.append({"workers": workers, "seconds": seconds, "span": span, "outcomes": outcomes, "load": load})
    where = f"the Ray cluster at {args.ray_address}" if args.ray_address else f"this machine ({os.cpu_count()} cores)"
    print(f"\n{args.task}: {args.episodes} scripted-expert episodes (<= {args.max_steps} steps, {args.image_size} px)")
    print(f"on {where}")
    print(
        "| workers | episodes | successes | wall s | episodes per minute | ratio to 1 worker "
        "| episodes per minute once up | ratio | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    one = next((r for r in rows if r["workers"] == 1), None)
    for row in rows:
        rate, steady = (len(row["outcomes"]) / row[key] * 60 for key in ("seconds", "span"))
        ratios = [
            f"{value / (len(one['outcomes']) / one[key] * 60):.2f}" if one else "-"
            for value, key in ((rate, "seconds"), (steady, "span"))
        ]
        print(
            f"| {row['workers']} | {len(row['outcomes'])} | {row['outcomes'].count('success')} | {row['seconds']:.0f} "
            f"| {rate:.2f} | {ratios[0]} | {steady:.2f} | {ratios[1]} | {row['load']:.1f} |"
        )
    same = len({tuple(row["outcomes"]) for row in rows}) == 1
    print(f"\nthe same outcome per goal for every worker count: {same}")


if __name__ == "__main__":
    main()
