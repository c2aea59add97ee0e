"""The shape of the paper's Table 1 at small scale: at the same budget P of real episodes, the base
policy vs model-free online GRPO vs DPO vs WMPO, each evaluated greedily on the same held-out
initial states, per task; success rates pooled over seeds with 95% Wilson intervals.

  python bench/table1.py --tasks Lift NutAssemblySquare --budget 32 --seeds 0 1 --eval-episodes 100

Inputs per task come from ``wmpo base-policy`` (its --output, default runs/base): the base policy
checkpoint (report.json) and the expert demonstrations' dataset (<task>/data). The world model is
pretrained here on those demonstrations once per task (--wm-steps). Per seed, WMPO runs one round
of ``wmpo_trainer.loop`` (collect P rollouts with the base policy, align, reward, GRPO in
imagination, evaluate); DPO learns from those same P rollouts; online GRPO spends its own P episodes
on the simulated arm. Every cell is stored in <output>/<task>/seed_<s>/<method>.json when done, so a
re-run resumes. Runs outside CI: hours on a CPU, far less on a GPU (--threads, and the trainers'
device fields).
"""

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from wmpo_bringup.sim_episodes import SimCollector
from wmpo_common.success_rate import fisher_exact_p, wilson_interval
from wmpo_trainer import dpo, online_grpo
from wmpo_trainer.grpo import GRPOConfig
from wmpo_trainer.loop import LoopConfig, run_loop
from wmpo_worldmodel.train_world_model import WMConfig
from wmpo_worldmodel.train_world_model import train as train_world_model

METHODS = ("base", "online GRPO", "DPO", "WMPO")


def cell(path: Path, run) -> dict:
    """A cell's evaluation: read it when a previous run finished it, else run and record it."""
    if path.is_file():
        return json.loads(path.read_text())
    result = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in result.items() if k != "results"}, indent=2))
    tmp.replace(path)
    return json.loads(path.read_text())


def run_task(task: str, args, collect: SimCollector) -> dict[str, list[dict]]:
    base_report = json.loads((Path(args.base) / "report.json").read_text())[task]
    policy = args.checkpoint.get(task, base_report["checkpoint"])
    demos = str(Path(args.base) / task / "data")
    folder = Path(args.output) / task
    stored = folder / "base_policy.txt"  # the cells below were made from it: never mix two base policies
    held = stored.read_text() if stored.is_file() else policy
    if held != policy:
        raise SystemExit(f"{folder} holds cells of base policy {held}, not {policy}; use another --output")
    folder.mkdir(parents=True, exist_ok=True)
    stored.write_text(policy)
    eval_states = list(range(args.eval_first_state, args.eval_first_state + args.eval_episodes))
    eval_goals = [{"init_state_id": i, "max_steps": args.max_steps, "record_mode": "all"} for i in eval_states]
    grpo = GRPOConfig(group_size=args.group_size, start_states=args.start_states, learning_rate=args.learning_rate)
    base = cell(folder / "base.json", lambda: collect(task, policy, eval_goals, folder / "base_eval", 0.0))
    cells = {method: [] for method in METHODS}
    for seed in args.seeds:
        out = folder / f"seed_{seed}"
        cells["base"].append(base)
        if "WMPO" in args.methods:
            pretraining = WMConfig(
                datasets=[demos],
                output=str(folder / "world_model"),
                steps=args.wm_steps,
                threads=args.threads,
                device=args.device,
            )
            loop_config = LoopConfig(
                task=task,
                policy=policy,
                world_model=str(train_world_model(pretraining)),  # resumes, or returns at once when trained
                demos=demos,
                output=str(out / "wmpo"),
                budget=args.budget,
                collect_first_init_state=3000 + 1000 * seed,
                eval_init_states=f"{args.eval_first_state}:{args.eval_first_state + args.eval_episodes}",
                max_steps=args.max_steps,
                align_steps=args.align_steps,
                reward_steps=args.reward_steps,
                wmpo_iterations=args.wmpo_iterations,
                grpo=grpo,
                sampler_steps=args.sampler_steps,
                threads=args.threads,
                device=args.device,
            )
            (out / "wmpo").mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "base.json", out / "wmpo" / "base_evaluate.json")  # the loop skips it: done
            cells["WMPO"].append(cell(out / "WMPO.json", lambda c=loop_config: _loop_evaluation(c, collect)))

        def run_dpo(seed=seed, out=out):
            collected = out / "wmpo" / "round_0" / "collect.json"
            if not collected.is_file():
                raise SystemExit(f"DPO learns from the WMPO round's P rollouts and {collected} is missing: run WMPO")
            rollouts = json.loads(collected.read_text())["dataset"]
            try:
                trained = dpo.train(
                    dpo.DPOConfig(
                        policy=policy,
                        rollouts=[rollouts],
                        output=str(out / "dpo"),
                        learning_rate=args.learning_rate,
                        seed=seed,
                        threads=args.threads,
                        device=args.device,
                    )
                )
            except ValueError as error:  # all P rollouts succeeded or all failed: no preference pairs
                return {**base, "note": f"no DPO update ({error}); the base policy's evaluation"}
            return collect(task, str(trained), eval_goals, out / "dpo_eval", 0.0)

        if "DPO" in args.methods:
            cells["DPO"].append(cell(out / "DPO.json", run_dpo))

        def run_online(seed=seed, out=out):
            config = online_grpo.OnlineGRPOConfig(
                policy=policy,
                task=task,
                output=str(out / "online_grpo"),
                budget=args.budget,
                groups_per_iteration=max(1, args.budget // (2 * args.group_size)),
                first_init_state=5000 + 1000 * seed,
                max_steps=args.max_steps,
                grpo=GRPOConfig(group_size=args.group_size, learning_rate=args.learning_rate),
                seed=seed,
                threads=args.threads,
                device=args.device,
            )
            trained = online_grpo.train(config, collect)
            history = json.loads((out / "online_grpo" / "history.json").read_text())
            if not any(row["informative_groups"] for row in history):  # the weights never changed
                note = "no online GRPO update (no group had both a success and a failure)"
                return {**base, "note": f"{note}; the base policy's evaluation"}
            return collect(task, str(trained), eval_goals, out / "online_grpo_eval", 0.0)

        if "online GRPO" in args.methods:
            cells["online GRPO"].append(cell(out / "online GRPO.json", run_online))
    return {method: results for method, results in cells.items() if results}


def _loop_evaluation(config: LoopConfig, collect) -> dict:
    run_loop(config, collect)
    return json.loads((Path(config.output) / "round_0" / "evaluate.json").read_text())


def pooled(results: list[dict]) -> tuple[float, float, float, int]:
    """(rate, low, high, episodes) over seeds: successes and episodes summed, Wilson 95%."""
    successes, episodes = sum(r["successes"] for r in results), sum(r["episodes"] for r in results)
    low, high = wilson_interval(successes, episodes)
    return successes / max(1, episodes), low, high, episodes


def wmpo_against(results: dict[str, list[dict]]) -> dict[str, float]:
    """Two-sided Fisher exact p of WMPO's pooled counts against each other method's."""
    if "WMPO" not in results:
        return {}
    k, _, _, n = pooled(results["WMPO"])
    k = round(k * n)
    others = {}
    for method, cells in results.items():
        if method != "WMPO":
            rate, _, _, m = pooled(cells)
            others[method] = fisher_exact_p(k, n, round(rate * m), m)
    return others


def table_lines(table: dict[str, dict[str, list[dict]]], budget: int) -> list[str]:
    """The markdown table: pooled rate (95% CI, n), the per-seed rates, and WMPO's p against the row."""
    tasks = list(table)
    lines = [f"| method (P = {budget}) | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    methods = [method for method in METHODS if method in table[tasks[0]]]
    p_values = {task: wmpo_against(table[task]) for task in tasks}
    for method in methods:
        row = []
        for task in tasks:
            rate, low, high, n = pooled(table[task][method])
            seeds = ", ".join(f"{r['successes'] / max(1, r['episodes']):.2f}" for r in table[task][method])
            versus = f"; WMPO vs this p = {p_values[task][method]:.3f}" if method in p_values[task] else ""
            row.append(f"{rate:.2f} ({low:.2f}-{high:.2f}, n={n}); seeds {seeds}{versus}")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return lines


def write_table(output: Path, table: dict[str, dict[str, list[dict]]], budget: int) -> str:
    tasks = list(table)
    methods = [method for method in METHODS if method in table[tasks[0]]]
    text = "\n".join(table_lines(table, budget)) + "\n"
    (output / "table1.md").write_text(text)
    figure, axis = plt.subplots(figsize=(2.5 + 2.5 * len(tasks), 3.5))
    width = 0.8 / len(methods)
    for m, method in enumerate(methods):
        stats = [pooled(table[task][method]) for task in tasks]
        x = np.arange(len(tasks)) + (m - (len(methods) - 1) / 2) * width
        rates = np.array([s[0] for s in stats])
        errors = [rates - [s[1] for s in stats], np.array([s[2] for s in stats]) - rates]
        axis.bar(x, rates, width, yerr=errors, capsize=3, label=method)
    axis.set_xticks(np.arange(len(tasks)), tasks)
    axis.set_ylabel("success rate (95% CI)")
    axis.set_ylim(0, 1)
    axis.set_title(f"P = {budget} real episodes per method")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "table1.png", dpi=120)
    plt.close(figure)
    return text


def _task_path(item: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    task, sep, path = item.partition("=")
    if not sep or not Path(path).is_dir():
        parser.error(f"--checkpoint takes TASK=PATH with PATH a checkpoint folder, got {item!r}")
    return task, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["Lift", "NutAssemblySquare"])
    parser.add_argument("--budget", type=int, default=32, help="P real episodes per method and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=100, help="held-out initial states per cell")
    parser.add_argument("--eval-first-state", type=int, default=1000)
    parser.add_argument("--base", default="runs/base", help="wmpo base-policy output")
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=[],
        metavar="TASK=PATH",
        help="base policy per task instead of the one in --base's report.json (e.g. one trained on longer)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS[1:],
        default=list(METHODS[1:]),
        help="the cells to run and tabulate besides the base policy's (e.g. a baseline in a second process "
        "with another ROS_DOMAIN_ID and the same --output); DPO learns from WMPO's P rollouts, so WMPO's "
        "collect phase must be done",
    )
    parser.add_argument("--output", default="runs/table1")
    parser.add_argument("--max-steps", type=int, default=LoopConfig.max_steps, help="episode budget (0 = the task's)")
    parser.add_argument("--wm-steps", type=int, default=2000, help="world-model pretraining on the demos")
    parser.add_argument("--align-steps", type=int, default=LoopConfig.align_steps)
    parser.add_argument("--reward-steps", type=int, default=LoopConfig.reward_steps)
    parser.add_argument("--wmpo-iterations", type=int, default=LoopConfig.wmpo_iterations)
    parser.add_argument("--group-size", type=int, default=GRPOConfig.group_size)
    parser.add_argument("--start-states", type=int, default=GRPOConfig.start_states)
    parser.add_argument("--sampler-steps", type=int, default=LoopConfig.sampler_steps)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=GRPOConfig.learning_rate,
        help="AdamW lr of every RL update (GRPO in imagination, online GRPO, DPO); GRPOConfig's, the measured "
        "one: the paper's 5e-6 is for OpenVLA-7B over hundreds of updates, and barely moves the small policy (README)",
    )
    parser.add_argument("--threads", type=int, default=LoopConfig.threads)
    parser.add_argument("--device", default=LoopConfig.device, help="torch device of every model (cpu, cuda, cuda:N)")
    args = parser.parse_args()
    args.checkpoint = dict(_task_path(item, parser) for item in args.checkpoint)

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "table1_args.json").write_text(json.dumps(vars(args), indent=2))
    collect = SimCollector(args.device)
    table = {task: run_task(task, args, collect) for task in args.tasks}
    (output / "table1.json").write_text(json.dumps(table, indent=2))
    print(write_table(output, table, args.budget))
    print(f"table: {output / 'table1.md'}, plot: {output / 'table1.png'}")


if __name__ == "__main__":
    main()
