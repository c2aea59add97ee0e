"""Episodes on the simulated arm through the real sim graph: start it, run a list of RunEpisode
goals, report success with a 95% interval. ``run_sim_episodes`` is the ``EpisodeRunner`` that the
jobs take (wmpo_jobs.collector: SimCollector, the base policy, the loop demo, Table 1).
"""

import os
import time
from pathlib import Path

from wmpo_bringup.environment import node_environment, private_domain_id
from wmpo_common.atomic_json import write_json
from wmpo_jobs.collector import CollectionReport, collection_report


def run_sim_episodes(
    task: str,
    goals: list[dict],
    output: Path,
    overrides: dict,
    title: str,
    workers: int = 1,
    ray_address: str | None = None,
) -> CollectionReport:
    """Start the sim graph, run one RunEpisode per goal (seed / init_state_id / max_steps /
    record_mode), print a table and write <output>/summary.json. Returns the summary.

    Resumable: a goal that already has a finished episode bag in <output>/episodes (a run killed
    before) is not run again, and its episode counts in the summary; a folder that holds another
    collection (another task or graph parameters, e.g. another checkpoint) is refused.

    ``workers`` > 1 or a ``ray_address``: the goals run on that many sim graphs at once, Ray actors
    (wmpo_bringup.sim_workers: local workers, or those of the Ray cluster at ``ray_address``); the
    results are the same, in goal order. One worker and no address: one graph in this process."""
    import rclpy
    from rich.console import Console
    from rich.progress import Progress

    from wmpo_bringup.episode_client import EpisodeClient
    from wmpo_bringup.runner import GraphError, GraphProcesses
    from wmpo_episodes.collection import CollectionMismatch, assign, claim_folder, with_sampling_seeds
    from wmpo_episodes.episodes import list_episodes

    console = Console()
    goals = with_sampling_seeds(goals)
    if workers < 1:
        raise ValueError(f"workers: at least 1, got {workers}")
    parallel = workers > 1 or ray_address is not None
    output = output.resolve()
    try:
        claim_folder(output, {"task": task, "overrides": overrides})
    except CollectionMismatch as error:
        console.print(f"[red]{error}")
        raise SystemExit(1) from None
    finished = [{"summary": e.summary, "bag_path": str(e.path)} for e in list_episodes(output / "episodes")]
    slots = assign(task, goals, finished)
    pending = [i for i, slot in enumerate(slots) if slot is None]
    if len(pending) < len(goals):
        console.print(f"resuming: {len(goals) - len(pending)} of {len(goals)} episodes are in {output / 'episodes'}")
    started = time.monotonic()
    replacements = 0
    if pending and parallel:
        replacements = _run_in_parallel(task, goals, pending, slots, output, overrides, workers, ray_address, console)
    elif pending:
        overrides = {**overrides, "recorder": {"output_dir": str(output / "episodes"), **overrides.get("recorder", {})}}
        domain = private_domain_id()
        env = node_environment(domain_id=domain, log_dir=str(output / "logs" / "ros"))
        console.print(f"sim graph on ROS_DOMAIN_ID={domain} (set ROS_DOMAIN_ID to choose it)")
        with GraphProcesses("sim", output / "logs", overrides=overrides, env=env) as processes:
            os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "RMW_", "AMENT_"))})
            rclpy.init()
            client = EpisodeClient("wmpo_cli")
            try:
                if not client.wait_for_graph(timeout=120.0):
                    processes.check()
                    raise GraphError("the episode manager and its services did not come up within 120 s")
                with Progress(console=console) as progress:
                    bar = progress.add_task(f"{task} episodes", total=len(pending))
                    for i in pending:
                        processes.check()
                        result = client.run_episode(task, **goals[i])
                        slots[i] = {"summary": result.summary, "bag_path": result.bag_path}
                        progress.advance(bar)
            except GraphError as error:
                console.print(f"[red]{error}")
                raise SystemExit(1) from None
            finally:
                client.destroy_node()
                rclpy.try_shutdown()
    run = {"workers": workers if parallel else 1, "worker_replacements": replacements}
    return _report(task, slots, output, title, time.monotonic() - started, run)


def _run_in_parallel(task, goals, pending, slots, output, overrides, workers, ray_address, console) -> int:
    """The pending goals on ``workers`` sim graphs (Ray actors); returns the workers replaced."""
    from rich.progress import Progress

    from wmpo_bringup.graph import check_parameters, mode_parameters, params_file
    from wmpo_bringup.sim_workers import WorkersFailed, run_on_workers

    try:  # refused before any worker starts, as the serial path refuses before any node starts
        check_parameters("sim", mode_parameters(params_file("sim"), overrides=overrides))
    except ValueError as error:
        console.print(f"[red]{error}")
        raise SystemExit(1) from None
    where = f"the Ray cluster at {ray_address}" if ray_address else "this machine"
    console.print(f"{min(workers, len(pending))} sim graphs at once, Ray workers on {where}")
    with Progress(console=console) as progress:
        bar = progress.add_task(f"{task} episodes", total=len(pending))
        try:
            return run_on_workers(
                task,
                goals,
                pending,
                slots,
                output,
                overrides,
                workers,
                ray_address,
                on_result=lambda i: progress.advance(bar),
                log=console.print,
            )
        except WorkersFailed as error:
            console.print(f"[red]{error}")
            raise SystemExit(1) from None


def _report(task: str, results: list[dict], output: Path, title: str, elapsed: float, run: dict) -> CollectionReport:
    """Print the table of ``results`` and write <output>/summary.json (``run``: how it ran, e.g. workers)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    for column in ("episode", "outcome", "steps", "success step", "interventions", "bag"):
        table.add_column(column)
    for result in results:
        s = result["summary"]
        table.add_row(
            s["episode_id"],
            s["outcome"],
            str(s["num_steps"]),
            str(s["success_step"]),
            str(s["safety_interventions"]),
            result["bag_path"] or "-",
        )
    console.print(table)
    report = collection_report(task, results, wall_time_s=round(elapsed, 1), **run)
    write_json(output / "summary.json", report)
    low, high = report["success_rate_95ci"]
    incomplete = report["incomplete"]
    console.print(
        f"{report['successes']}/{len(results)} succeeded (95% CI {low:.2f}-{high:.2f}) in {elapsed:.0f} s"
        + (f", [red]{incomplete} incomplete (counted as failures; see the logs)[/red]" if incomplete else "")
        + "; "
        f"bags in {output / 'episodes'}; summary in {output / 'summary.json'}"
    )
    return report
