"""``wmpo``: the pip-only entry point.

wmpo demo                 closed loop on the simulated arm: a few Lift episodes, one bag each
wmpo run MODE             start a mode's graph (sim | robot | imagine) until Ctrl-C
wmpo graph MODE           print a mode's processes and nodes
wmpo episodes list DIR    labels of the episode bags in DIR
wmpo episodes recover DIR recover bags left by a killed recorder (labelled incomplete)
"""

import argparse
import json
import sys
import time
from pathlib import Path

from wmpo_bringup.graph import MODES, graph, params_file


def cmd_graph(args) -> int:
    print(f"mode {args.mode} (params: {params_file(args.mode)})")
    for spec in graph(args.mode):
        print(f"  {spec.package}/{spec.executable}: nodes {', '.join(spec.nodes)}  [{spec.module()}]")
    return 0


def cmd_run(args) -> int:
    from wmpo_bringup.runner import GraphError, GraphProcesses

    processes = GraphProcesses(args.mode, Path(args.log_dir), params=args.params).start()
    print(f"started {len(processes.processes)} processes; logs in {args.log_dir}; Ctrl-C stops")
    try:
        while True:
            processes.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except GraphError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        processes.stop()


def cmd_demo(args) -> int:
    import rclpy
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from wmpo_bringup.environment import node_environment
    from wmpo_bringup.episode_client import EpisodeClient
    from wmpo_bringup.runner import GraphError, GraphProcesses

    console = Console()
    output = Path(args.output).resolve()
    episodes_dir = output / "episodes"
    overrides = {"recorder": {"output_dir": str(episodes_dir)}, "camera": {"image_size": args.image_size}}
    env = node_environment(log_dir=str(output / "logs" / "ros"))
    rows = []
    started = time.monotonic()
    with GraphProcesses("sim", output / "logs", overrides=overrides, env=env) as processes:
        import os

        os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "RMW_", "AMENT_"))})
        rclpy.init()
        client = EpisodeClient("wmpo_demo")
        try:
            if not client.wait_for_graph(timeout=60.0):
                processes.check()
                raise GraphError("the episode manager did not come up within 60 s")
            with Progress(console=console) as progress:
                bar = progress.add_task(f"{args.task} episodes", total=args.episodes)
                for index in range(args.episodes):
                    processes.check()
                    result = client.run_episode(
                        args.task, seed=args.seed + index, max_steps=args.max_steps, record_mode=args.record_mode
                    )
                    rows.append(result)
                    progress.advance(bar)
        except GraphError as error:
            console.print(f"[red]{error}")
            return 1
        finally:
            client.destroy_node()
            rclpy.try_shutdown()
    elapsed = time.monotonic() - started
    table = Table(title=f"{args.task}: {args.episodes} episodes with the scripted expert on the simulated arm")
    for column in ("episode", "outcome", "steps", "success step", "interventions", "bag"):
        table.add_column(column)
    for result in rows:
        s = result.summary
        table.add_row(
            s["episode_id"],
            s["outcome"],
            str(s["num_steps"]),
            str(s["success_step"]),
            str(s["safety_interventions"]),
            result.bag_path or "-",
        )
    console.print(table)
    successes = sum(r.summary["outcome"] == "success" for r in rows)
    report = {
        "task": args.task,
        "episodes": len(rows),
        "successes": successes,
        "success_rate": successes / max(1, len(rows)),
        "wall_time_s": round(elapsed, 1),
        "results": [{"summary": r.summary, "bag_path": r.bag_path} for r in rows],
    }
    (output / "summary.json").write_text(json.dumps(report, indent=2))
    console.print(
        f"{successes}/{len(rows)} succeeded in {elapsed:.0f} s; bags in {episodes_dir}; "
        f"summary in {output / 'summary.json'}"
    )
    return 0 if len(rows) == args.episodes else 1


def cmd_episodes(args) -> int:
    from wmpo_episodes.episodes import list_episodes
    from wmpo_episodes.recovery import recover_incoming

    if args.action == "recover":
        for path in recover_incoming(Path(args.dir)):
            print(f"recovered {path} (incomplete)")
        return 0
    for episode in list_episodes(Path(args.dir)):
        s = episode.summary
        outcome, steps, policy = s.get("outcome", "?"), s.get("num_steps", 0), s.get("policy_id", "")
        print(f"{episode.path.name}  {outcome:10s}  steps {steps:4d}  {policy}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="wmpo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="closed loop on the simulated arm with the scripted expert")
    demo.add_argument("--task", default="Lift", choices=["Lift", "NutAssemblySquare"])
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")
    demo.add_argument("--max-steps", type=int, default=0, help="step budget per episode (0 = the task's)")
    demo.add_argument("--image-size", type=int, default=128)
    demo.add_argument("--record-mode", default="all", choices=["all", "failures", "none"])
    demo.add_argument("--output", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="start a mode's graph until Ctrl-C")
    run.add_argument("mode", choices=MODES)
    run.add_argument("--params", help="params YAML (default: the mode's own)")
    run.add_argument("--log-dir", default="runs/logs")
    run.set_defaults(func=cmd_run)
    show = sub.add_parser("graph", help="print a mode's processes")
    show.add_argument("mode", choices=MODES)
    show.set_defaults(func=cmd_graph)
    episodes = sub.add_parser("episodes", help="list or recover episode bags")
    episodes.add_argument("action", choices=["list", "recover"])
    episodes.add_argument("dir")
    episodes.set_defaults(func=cmd_episodes)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
