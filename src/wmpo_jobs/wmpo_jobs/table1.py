"""The shape of the paper's Table 1 at small scale: at the same budget P of real episodes, the base
policy vs model-free online GRPO vs DPO vs WMPO, each evaluated on the same held-out initial states
under two protocols, greedy (the paper's) and sampled at the RL temperature (RLinf's; a binned
policy's greedy choice flips under small updates), per task; success rates pooled over seeds with
95% Wilson intervals.

Inputs per task come from ``wmpo base-policy`` (its --output, default runs/base): the base policy
checkpoint (report.json) and the expert demonstrations' dataset (<task>/data). The world model is
pretrained on those demonstrations once per task (wm_steps). Per seed, WMPO runs one round of
``wmpo_jobs.loop`` (collect P rollouts with the base policy, align, reward, GRPO in imagination,
evaluate); DPO learns from those same P rollouts; online GRPO spends its own P episodes on the
simulated arm. Every cell is stored in <output>/<task>/seed_<s>/<method>.json when done, so a
re-run resumes. The command line is bench/table1.py.
"""

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from wmpo_common.atomic_json import write_json
from wmpo_common.success_rate import fisher_exact_p, wilson_interval
from wmpo_jobs.collector import Collector, EpisodeRunner
from wmpo_jobs.configs import LoopConfig
from wmpo_trainer.configs import DPOConfig, GRPOConfig, OnlineGRPOConfig
from wmpo_worldmodel.configs import WMConfig

METHODS = ("base", "online GRPO", "DPO", "WMPO")
PROTOCOLS = ("greedy", "sampled")  # temperature 0, and the RL (GRPO) temperature
Method = Literal["online GRPO", "DPO", "WMPO"]


@dataclass
class Table1Config:
    """Table 1 at small scale: base policy vs online GRPO vs DPO vs WMPO at the same budget P of
    real episodes, greedy and sampled on the same held-out initial states, pooled over seeds (95%
    Wilson intervals, Fisher exact p of WMPO against each). Runs outside CI: hours on a CPU."""

    tasks: list[str] = field(default_factory=lambda: ["Lift", "NutAssemblySquare"])  # simulated tasks
    budget: int = 32  # P: real episodes per method and seed
    seeds: list[int] = field(default_factory=lambda: [0])  # one cell per method, task and seed
    eval_episodes: int = 100  # held-out initial states per cell
    eval_first_state: int = 1000  # the first held-out initial-state id
    base: str = "runs/base"  # wmpo base-policy's output (report.json, <task>/data)
    # TASK=PATH: the base policy of a task instead of the one in base's report.json (e.g. one trained longer)
    checkpoint: list[str] = field(default_factory=list)
    # The cells to run and tabulate besides the base policy's (e.g. a baseline in a second process with
    # another ROS_DOMAIN_ID and the same output); DPO learns from WMPO's P rollouts, so WMPO's collect
    # phase must be done.
    methods: list[Method] = field(default_factory=lambda: list(METHODS[1:]))
    output: str = "runs/table1"  # folder of the cells, table1.md, table1.png, table1.json
    wm_steps: int = 2000  # world-model pretraining steps on the demonstrations
    # The WMPO round (the fields of wmpo loop that Table 1 sets; the rest are the loop's defaults). Its
    # GRPO learning rate is every RL update's (GRPO in imagination, online GRPO, DPO): GRPOConfig's, the
    # measured one; the paper's 5e-6 is for OpenVLA-7B over hundreds of updates (README).
    max_steps: int = LoopConfig.max_steps  # episode budget in the simulator, control steps (0 = the task's)
    align_steps: int = LoopConfig.align_steps  # world-model alignment steps on the P rollouts
    reward_steps: int = LoopConfig.reward_steps  # reward-model training steps
    wmpo_iterations: int = LoopConfig.wmpo_iterations  # GRPO iterations in imagination
    grpo: GRPOConfig = field(default_factory=GRPOConfig)  # group size, start states, learning rate, ...
    sampler_steps: int = LoopConfig.sampler_steps  # denoising steps per imagined chunk
    threads: int = LoopConfig.threads  # torch CPU threads
    device: str = LoopConfig.device  # torch device of every model and of the policy server (cpu, cuda, cuda:N)

    def checkpoints(self) -> dict[str, str]:
        """The TASK=PATH items of ``checkpoint``; ValueError for one that is not TASK=FOLDER."""
        out = {}
        for item in self.checkpoint:
            task, separator, path = item.partition("=")
            if not separator or not Path(path).is_dir():
                raise ValueError(f"checkpoint takes TASK=PATH with PATH a checkpoint folder, got {item!r}")
            out[task] = path
        return out


def cell(path: Path, run) -> dict:
    """A cell's evaluation: read it when a previous run finished it, else run and record it."""
    if not path.is_file():
        result = run()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {k: v for k, v in result.items() if k != "results"})
    return json.loads(path.read_text())


def run_task(task: str, config: Table1Config, collect: Collector) -> dict[str, dict[str, list[dict]]]:
    """Every cell of ``task`` (resuming), by protocol then method: the evaluations of each seed.
    A cell is <output>/<task>/seed_<s>/<method> <protocol>.json (the base policy's: <task>/base
    <protocol>.json, shared by the seeds); a method that made no update keeps the base's cells."""
    from wmpo_trainer import dpo, online_grpo
    from wmpo_worldmodel.train_world_model import train as train_world_model

    base_report = json.loads((Path(config.base) / "report.json").read_text())[task]
    policy = config.checkpoints().get(task, base_report["checkpoint"])
    demos = str(Path(config.base) / task / "data")
    folder = Path(config.output) / task
    stored = folder / "base_policy.txt"  # the cells below were made from it: never mix two base policies
    held = stored.read_text() if stored.is_file() else policy
    if held != policy:
        raise SystemExit(f"{folder} holds cells of base policy {held}, not {policy}; use another --output")
    folder.mkdir(parents=True, exist_ok=True)
    stored.write_text(policy)
    last_state = config.eval_first_state + config.eval_episodes
    eval_goals = [
        {"init_state_id": i, "max_steps": config.max_steps, "record_mode": "all"}
        for i in range(config.eval_first_state, last_state)
    ]
    temperatures = {"greedy": 0.0, "sampled": config.grpo.temperature}

    def evaluate(out: Path, method: str, checkpoint, greedy=None) -> dict[str, dict]:
        """``checkpoint()`` (trained, or resumed, only when a cell is missing) under both protocols;
        ``greedy``: the greedy evaluation when the method's own job already ran it (the loop)."""
        trained = {}

        def run(protocol: str) -> dict:
            if protocol == "greedy" and greedy is not None:
                return greedy()
            if "path" not in trained:
                trained["path"] = checkpoint()
            if isinstance(trained["path"], dict):  # no update: the base policy's evaluation
                return {**base[protocol], "note": trained["path"]["note"]}
            eval_dir = out / f"{method.replace(' ', '_').lower()}_{protocol}_eval"
            return collect(task, trained["path"], eval_goals, eval_dir, temperatures[protocol])

        return {protocol: cell(out / f"{method} {protocol}.json", lambda p=protocol: run(p)) for protocol in PROTOCOLS}

    base = evaluate(folder, "base", lambda: policy)  # what a method without an update reports
    runtime = {"threads": config.threads, "device": config.device}
    cells = {protocol: {method: [] for method in METHODS} for protocol in PROTOCOLS}

    def add(method: str, evaluations: dict[str, dict]) -> None:
        for protocol in PROTOCOLS:
            cells[protocol][method].append(evaluations[protocol])

    for seed in config.seeds:
        out = folder / f"seed_{seed}"
        add("base", base)
        if "WMPO" in config.methods:
            pretraining = WMConfig(
                datasets=[demos], output=str(folder / "world_model"), steps=config.wm_steps, **runtime
            )
            loop_config = LoopConfig(
                task=task,
                policy=policy,
                world_model=str(train_world_model(pretraining)),  # resumes, or returns at once when trained
                demos=demos,
                output=str(out / "wmpo"),
                budget=config.budget,
                collect_first_init_state=3000 + 1000 * seed,
                eval_init_states=f"{config.eval_first_state}:{last_state}",
                max_steps=config.max_steps,
                align_steps=config.align_steps,
                reward_steps=config.reward_steps,
                wmpo_iterations=config.wmpo_iterations,
                grpo=config.grpo,
                sampler_steps=config.sampler_steps,
                **runtime,
            )
            (out / "wmpo").mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "base greedy.json", out / "wmpo" / "base_evaluate.json")  # the loop skips it
            round_0 = out / "wmpo" / "round_0"
            add(
                "WMPO",
                evaluate(
                    out,
                    "WMPO",
                    lambda c=loop_config, r=round_0: _loop_policy(c, collect, r),
                    greedy=lambda c=loop_config, r=round_0: _loop_evaluation(c, collect, r),
                ),
            )

        def train_dpo(seed=seed, out=out):
            collected = out / "wmpo" / "round_0" / "collect.json"
            if not collected.is_file():
                raise SystemExit(f"DPO learns from the WMPO round's P rollouts and {collected} is missing: run WMPO")
            rollouts = json.loads(collected.read_text())["dataset"]
            dpo_config = DPOConfig(
                policy=policy,
                rollouts=[rollouts],
                output=str(out / "dpo"),
                learning_rate=config.grpo.learning_rate,
                seed=seed,
                **runtime,
            )
            try:
                return str(dpo.train(dpo_config))
            except ValueError as error:  # all P rollouts succeeded or all failed: no preference pairs
                return {"note": f"no DPO update ({error}); the base policy's evaluation"}

        if "DPO" in config.methods:
            add("DPO", evaluate(out, "DPO", train_dpo))

        def train_online(seed=seed, out=out):
            online = OnlineGRPOConfig(
                policy=policy,
                task=task,
                output=str(out / "online_grpo"),
                budget=config.budget,
                groups_per_iteration=max(1, config.budget // (2 * config.grpo.group_size)),
                first_init_state=5000 + 1000 * seed,
                max_steps=config.max_steps,
                grpo=GRPOConfig(group_size=config.grpo.group_size, learning_rate=config.grpo.learning_rate),
                seed=seed,
                **runtime,
            )
            trained = online_grpo.train(online, collect)
            history = json.loads((out / "online_grpo" / "history.json").read_text())
            if not any(row["informative_groups"] for row in history):  # the weights never changed
                note = "no online GRPO update (no group had both a success and a failure)"
                return {"note": f"{note}; the base policy's evaluation"}
            return str(trained)

        if "online GRPO" in config.methods:
            add("online GRPO", evaluate(out, "online GRPO", train_online))
    return {
        protocol: {method: results for method, results in by_method.items() if results}
        for protocol, by_method in cells.items()
    }


def _loop_policy(config: LoopConfig, collect: Collector, round_0: Path) -> str:
    """The WMPO round's improved policy (running the loop round first if needed)."""
    from wmpo_jobs.loop import run_loop

    run_loop(config, collect)
    return json.loads((round_0 / "wmpo.json").read_text())["policy"]


def _loop_evaluation(config: LoopConfig, collect: Collector, round_0: Path) -> dict:
    """The WMPO round's own greedy evaluation of its improved policy."""
    from wmpo_jobs.loop import run_loop

    run_loop(config, collect)
    return json.loads((round_0 / "evaluate.json").read_text())


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


def by_protocol(table: dict[str, dict[str, dict[str, list[dict]]]], protocol: str) -> dict[str, dict[str, list[dict]]]:
    """{task: {protocol: {method: cells}}} -> one protocol's {task: {method: cells}}."""
    return {task: protocols[protocol] for task, protocols in table.items()}


def write_table(output: Path, table: dict[str, dict[str, dict[str, list[dict]]]], budget: int) -> str:
    """table1.md (a table per protocol) and table1.png (pooled rates with their 95% intervals, a
    panel per protocol); returns the markdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(table)
    sections = []
    figure, axes = plt.subplots(1, len(PROTOCOLS), figsize=(2 * (2.5 + 2.5 * len(tasks)), 3.5), sharey=True)
    for axis, protocol in zip(axes, PROTOCOLS, strict=True):
        cells = by_protocol(table, protocol)
        sections.append(f"{protocol}:\n\n" + "\n".join(table_lines(cells, budget)))
        methods = [method for method in METHODS if method in cells[tasks[0]]]
        width = 0.8 / len(methods)
        for m, method in enumerate(methods):
            stats = [pooled(cells[task][method]) for task in tasks]
            x = np.arange(len(tasks)) + (m - (len(methods) - 1) / 2) * width
            rates = np.array([s[0] for s in stats])
            errors = [rates - [s[1] for s in stats], np.array([s[2] for s in stats]) - rates]
            axis.bar(x, rates, width, yerr=errors, capsize=3, label=method)
        axis.set_xticks(np.arange(len(tasks)), tasks)
        axis.set_ylim(0, 1)
        axis.set_title(f"{protocol}, P = {budget} real episodes per method")
    axes[0].set_ylabel("success rate (95% CI)")
    axes[0].legend(fontsize=8)
    text = "\n\n".join(sections) + "\n"
    (output / "table1.md").write_text(text)
    figure.tight_layout()
    figure.savefig(output / "table1.png", dpi=120)
    plt.close(figure)
    return text


def run_table1(config: Table1Config, run_episodes: EpisodeRunner) -> dict:
    """Every task's cells (resuming), then table1.json, table1.md and table1.png; returns the table."""
    from wmpo_jobs.collector import SimCollector

    config.checkpoints()  # a bad TASK=PATH is refused before anything runs
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "table1_config.json", asdict(config))
    collect = SimCollector(run_episodes, config.device)
    table = {task: run_task(task, config, collect) for task in config.tasks}
    write_json(output / "table1.json", table)
    print(write_table(output, table, config.budget))
    print(f"table: {output / 'table1.md'}, plot: {output / 'table1.png'}")
    return table
