"""``wmpo``: the pip-only entry point. Each command is a config dataclass (its fields are the
options, their comments the help, their defaults the only defaults; wmpo_bringup.config_cli) and
a function that runs it; ``wmpo COMMAND --help`` lists every option."""

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Annotated, Literal

from tyro.conf import Positional, create_mutex_group

from wmpo_bringup.config_cli import from_mapping, parse_config, read_yaml
from wmpo_bringup.environment import node_environment
from wmpo_bringup.graph import MODES, graph, params_file
from wmpo_bringup.sim_episodes import run_sim_episodes
from wmpo_common.configs import ConfigError
from wmpo_common.cpu_memory import reuse_freed_memory
from wmpo_common.ranges import parse_range
from wmpo_episodes.lerobot_format import LeRobotOptions
from wmpo_jobs import JOBS
from wmpo_robot_io.sim.tasks import TASKS

Task = Literal[tuple(TASKS)]
Mode = Literal[MODES]
RecordMode = Literal["all", "failures", "none"]
Scenes = create_mutex_group(required=False)


# -- the graph ---------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """Start a mode's graph (its processes and nodes) until Ctrl-C."""

    mode: Positional[Mode]  # sim | robot | imagine
    params: str = ""  # params YAML ("" = the mode's own)
    log_dir: str = "runs/logs"  # one log file per process


def cmd_run(config: RunConfig) -> int:
    from wmpo_bringup.runner import GraphError, GraphProcesses

    processes = GraphProcesses(config.mode, Path(config.log_dir), params=config.params or None)
    try:
        processes.start()  # refused parameters (the scripted expert on the robot): GraphError, nothing started
        print(f"started {len(processes.processes)} processes; logs in {config.log_dir}; Ctrl-C stops")
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


@dataclass
class GraphConfig:
    """Print a mode's processes and nodes."""

    mode: Positional[Mode]  # sim | robot | imagine


def cmd_graph(config: GraphConfig) -> int:
    print(f"mode {config.mode} (params: {params_file(config.mode)})")
    for spec in graph(config.mode):
        print(f"  {spec.package}/{spec.executable}: nodes {', '.join(spec.nodes)}  [{spec.module()}]")
    return 0


@dataclass
class LabelConfig:
    """Label the running episode success / failure (the operator's verdict on a physical arm)."""

    outcome: Positional[Literal["success", "failure"] | None] = None  # omit: ask at the keyboard until q
    service: str = "episode_manager/label"  # the episode manager's LabelEpisode service
    timeout: float = 5.0  # seconds to wait for the episode manager


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


def cmd_label(config: LabelConfig) -> int:
    """Label the running episode once (``wmpo label success``), or from the keyboard until ``q``."""
    import rclpy

    from wmpo_bringup.label_client import LabelClient

    rclpy.init()
    client = LabelClient(config.service)
    try:
        if config.outcome:
            answer = client.label(config.outcome, config.timeout)
            print(answer.message)
            return 0 if answer.success else 1
        while (outcome := ask_outcome()) is not None:
            print(client.label(outcome, config.timeout).message)
        return 0
    except (TimeoutError, EOFError, KeyboardInterrupt) as error:
        print(f"stopped: {error!r}", file=sys.stderr)
        return 1
    finally:
        client.destroy_node()
        rclpy.try_shutdown()


# -- episodes and datasets ---------------------------------------------------------------------
@dataclass
class DemoConfig:
    """Closed loop on the simulated arm with the scripted expert: a few episodes, one bag each."""

    task: Task = "Lift"  # simulated task
    episodes: int = 5  # episodes to run
    seed: int = 0  # seed of the first episode (then +1 each)
    max_steps: int = 0  # step budget per episode, control steps (0 = the task's)
    image_size: int = 128  # px, camera images
    record_mode: RecordMode = "all"  # which episodes keep their bag
    # DART demonstrations: noise std per action dimension (controller units), 7 values
    # x y z roll pitch yaw gripper, added between the expert and the arm; () = none.
    action_noise: tuple[float, ...] = ()
    output: str = "runs/demo"  # folder of episodes/ (bags), summary.json and logs/
    workers: int = 1  # sim graphs at once, each a Ray actor with its own ROS_DOMAIN_ID (1 = one graph, no Ray)
    ray_address: str | None = None  # an existing Ray cluster's address (ray.init(address=...)); None = local


def cmd_demo(config: DemoConfig) -> int:
    noise = config.action_noise
    if noise and (len(noise) != 7 or not all(math.isfinite(v) and v >= 0 for v in noise)):
        raise SystemExit(f"--action-noise: need 7 finite values >= 0, got {list(noise)}")
    goals = [
        {"seed": config.seed + i, "max_steps": config.max_steps, "record_mode": config.record_mode}
        for i in range(config.episodes)
    ]
    overrides = {"camera": {"image_size": config.image_size}}
    if noise:
        overrides["episode_manager"] = {"action_noise_std": list(noise)}
    noisy = f", action noise {list(noise)}" if noise else ""
    title = f"{config.task}: {config.episodes} episodes with the scripted expert on the simulated arm{noisy}"
    report = run_sim_episodes(
        config.task, goals, Path(config.output), overrides, title, config.workers, config.ray_address
    )
    return 0 if report["episodes"] == config.episodes else 1


@dataclass
class EpisodesConfig:
    """List the labels of the episode bags in a folder, or recover the bags a killed recorder left."""

    action: Positional[Literal["list", "recover"]]  # list | recover (labelled incomplete)
    dir: Positional[str]  # folder of episode bags


def cmd_episodes(config: EpisodesConfig) -> int:
    from wmpo_episodes.episodes import list_episodes
    from wmpo_episodes.recovery import recover_incoming

    if config.action == "recover":
        for path in recover_incoming(Path(config.dir)):
            print(f"recovered {path} (incomplete)")
        return 0
    for episode in list_episodes(Path(config.dir)):
        s = episode.summary
        outcome, steps, policy = s.get("outcome", "?"), s.get("num_steps", 0), s.get("policy_id", "")
        print(f"{episode.path.name}  {outcome:10s}  steps {steps:4d}  {policy}")
    return 0


@dataclass
class DatasetConfig:
    """Convert episode bags into a training dataset (once), or into a LeRobot v3 dataset; or import
    a LeRobot v3 dataset (a folder with meta/info.json) into a training dataset."""

    episodes: Positional[str]  # folder of episode bags, or a LeRobot v3 dataset folder to import
    output: Positional[str]  # dataset folder to create
    image_size: int | None = None  # px, frames resized to it (None: as recorded)
    include_incomplete: bool = False  # also the episodes cut short by the graph
    format: Literal["wmpo", "lerobot"] = "wmpo"  # what to write: the training dataset, or LeRobot v3 (from bags)
    lerobot: LeRobotOptions = field(default_factory=LeRobotOptions)  # LeRobot export / import settings


def cmd_dataset(config: DatasetConfig) -> int:
    from functools import partial

    from tqdm import tqdm

    from wmpo_episodes import lerobot_format
    from wmpo_episodes.bag_conversion import build_dataset
    from wmpo_episodes.dataset import write_dataset

    source, output = Path(config.episodes), Path(config.output)
    if lerobot_format.is_lerobot_dataset(source):
        if config.format == "lerobot":
            raise SystemExit(f"{source} is a LeRobot dataset already; --format lerobot converts bags")
        episodes = lerobot_format.read_lerobot_episodes(source, config.lerobot, config.image_size)
        records = write_dataset(
            output, (e for e in episodes if config.include_incomplete or e[0]["outcome"] != "incomplete")
        )
    else:
        write = write_dataset
        if config.format == "lerobot":
            write = partial(lerobot_format.write_lerobot_dataset, options=config.lerobot)
        records = build_dataset(
            source, output, config.image_size, config.include_incomplete, progress=tqdm, write=write
        )
    outcomes = {o: sum(r.outcome == o for r in records) for o in ("success", "failure", "incomplete")}
    print(f"{len(records)} episodes, {sum(r.num_steps for r in records)} steps -> {config.output} ({outcomes})")
    return 0


# -- the policy --------------------------------------------------------------------------------
@dataclass
class EvalConfig:
    """Greedy rollouts of a VLA checkpoint through the sim graph, on initial-state ids (fixed,
    reproducible scenes; the held-out ones start at 1000) or on seeds (a scene drawn at random,
    as the expert demonstrations' seeds are the training scenes)."""

    checkpoint: str  # VLA checkpoint folder
    task: Task = "Lift"  # simulated task
    init_states: Annotated[str, Scenes] = "1000:1020"  # initial-state ids 'first:last' (last excluded) or 'a,b,c'
    seeds: Annotated[str, Scenes] = ""  # scene seeds instead, 'first:last' or 'a,b,c' (the demos': 0:N)
    max_steps: int = 0  # step budget per episode, control steps (0 = the task's)
    execute_steps: int = 0  # actions executed per chunk before asking again (0 = all K)
    temporal_ensembling: bool = False  # blend overlapping chunks (with execute_steps < K)
    image_size: int = 128  # px, camera images
    record_mode: RecordMode = "all"  # which episodes keep their bag
    output: str = "runs/eval"  # folder of episodes/ (bags), summary.json and logs/
    device: str = "cpu"  # torch device of the policy server (cpu, cuda, cuda:N)
    workers: int = 1  # sim graphs at once, each a Ray actor with its own ROS_DOMAIN_ID (1 = one graph, no Ray)
    ray_address: str | None = None  # an existing Ray cluster's address (ray.init(address=...)); None = local


def cmd_eval(config: EvalConfig) -> int:
    from wmpo_jobs.collector import vla_policy_server
    from wmpo_policy.vla.policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(config.checkpoint)  # fail early, with a clear error
    key, ids = ("seed", config.seeds) if config.seeds else ("init_state_id", config.init_states)
    goals = [{key: i, "max_steps": config.max_steps, "record_mode": config.record_mode} for i in parse_range(ids)]
    overrides = {
        "camera": {"image_size": config.image_size},
        "policy_server": {
            **vla_policy_server(config.checkpoint, 0.0, config.device),
            "temporal_ensembling": config.temporal_ensembling,
        },
        "episode_manager": {"execute_steps": config.execute_steps},
    }
    where = f"seeds {config.seeds}" if config.seeds else f"initial states {config.init_states}"
    title = f"{config.task}: greedy VLA {config.checkpoint} ({policy.stats.id}) on {where}"
    run_sim_episodes(config.task, goals, Path(config.output), overrides, title, config.workers, config.ray_address)
    return 0


def cmd_train_bc(config) -> int:
    from wmpo_policy.train_bc import train

    train(config)
    return 0


@dataclass
class InitVLAConfig:
    """Build a VLA checkpoint from local pretrained SigLIP + Llama folders (no download)."""

    vision: str  # SiglipVisionModel folder (save_pretrained)
    language: str  # LlamaForCausalLM folder (save_pretrained)
    dataset: str  # dataset folder whose actions give the normalisation statistics
    output: str  # the VLA checkpoint folder to write
    tokenizer: str = ""  # tokenizer folder ("" = the language folder)


def cmd_init_vla(config: InitVLAConfig) -> int:
    import numpy as np

    from wmpo_common.actions import ActionStats
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_policy.vla.policy import VLAPolicy

    data = EpisodeDataset(Path(config.dataset))
    stats = ActionStats.from_actions(np.concatenate([data.episode(i)["commanded"] for i in range(len(data.records))]))
    policy = VLAPolicy.from_backbones(config.vision, config.language, stats, config.tokenizer or None)
    path = policy.save_pretrained(config.output)
    print(f"VLA checkpoint {path} ({sum(p.numel() for p in policy.model.parameters()) / 1e6:.1f} M parameters)")
    return 0


def parse_base_policy(args: list[str], prog: str) -> list:
    """wmpo base-policy builds one job per task, (task, its job): the job again over the task's
    recipe from --recipes, so that the command line stays on top."""
    from wmpo_jobs.base_policy import BasePolicyJob

    job = parse_config(BasePolicyJob, args, prog)
    try:
        recipes = read_yaml(Path(job.recipes))
        jobs = []
        for task in job.tasks:
            if task not in recipes:
                raise ConfigError(f"{job.recipes} has no recipe for {task!r}; recipes: {', '.join(recipes)}")
            base = from_mapping(BasePolicyJob, {"recipe": recipes[task] or {}}, where=f"{job.recipes}: {task}")
            jobs.append((task, parse_config(BasePolicyJob, args, prog, base=base)))
        return jobs
    except ConfigError as error:
        raise SystemExit(f"{prog}: {error}") from None


def cmd_base_policy(jobs: list) -> int:
    from wmpo_jobs.base_policy import run_base_policy

    run_base_policy(jobs, run_sim_episodes)
    return 0


# -- the world model ---------------------------------------------------------------------------
def cmd_train_wm(config) -> int:
    from wmpo_worldmodel.train_world_model import train

    try:
        train(config)
    except ValueError as error:  # a conflicting option, a bad dataset: the reason, no traceback
        raise SystemExit(f"wmpo train-wm: {error}") from None
    return 0


def cmd_train_vae(config) -> int:
    from wmpo_worldmodel.train_vae import train

    train(config)
    return 0


def cmd_train_reward(config) -> int:
    from wmpo_worldmodel.train_reward import train

    train(config)
    return 0


def cmd_wm_study(config) -> int:
    from wmpo_jobs.study import run_study

    report = run_study(config)
    print((Path(config.output) / "report" / "report.md").read_text())
    return 0 if report else 1


def cmd_wm_fidelity(config) -> int:
    from wmpo_jobs.wm_fidelity import run_wm_fidelity

    print(run_wm_fidelity(config).read_text())
    return 0


# -- reinforcement learning --------------------------------------------------------------------
def cmd_train_wmpo(config) -> int:
    from wmpo_trainer.train_wmpo import train

    train(config)
    return 0


def cmd_dpo(config) -> int:
    from wmpo_trainer.dpo import train

    print(f"DPO policy: {train(config)}")
    return 0


def cmd_online_grpo(config) -> int:
    from wmpo_jobs.collector import SimCollector
    from wmpo_trainer.online_grpo import train

    print(f"online GRPO policy: {train(config, SimCollector(run_sim_episodes, config.device))}")
    return 0


def cmd_loop(config) -> int:
    from wmpo_jobs.collector import SimCollector
    from wmpo_jobs.loop import run_loop

    collect = SimCollector(run_sim_episodes, config.device)
    summary = run_loop(config, collect, on_phase=lambda r, phase, _: print(f"round {r}: {phase} done"))
    print((Path(config.output) / "report.md").read_text())
    return 0 if summary["rounds"] or config.rounds == 0 else 1


def cmd_loop_demo(config) -> int:
    from wmpo_jobs.loop_demo import run_loop_demo

    output = Path(config.output)
    summary = run_loop_demo(config, run_sim_episodes)
    print((output / "loop" / "report.md").read_text())
    before = summary["base_success_rate"]
    after = summary["rounds"][-1]["eval_success_rate"] if summary["rounds"] else before
    print(f"{config.task}: success {before:.2f} before WMPO, {after:.2f} after; report {output / 'loop' / 'report.md'}")
    return 0


@dataclass
class ReportConfig:
    """(Re)build a WMPO loop run's report page, RUN/report.html: success per round real and imagined,
    the imagination gap, the imagined-vs-real strips and the training curves of its TensorBoard logs."""

    run: Positional[str]  # the loop's output folder (summary.json, round_<r>/)


def cmd_report(config: ReportConfig) -> int:
    from wmpo_jobs.report_page import write_report_page

    print(write_report_page(config.run))
    return 0


# -- the commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    summary: str  # one line for `wmpo --help`
    config: str  # "module:Class", imported when the command runs (training modules import torch)
    run: Callable  # run(config) -> exit status
    default_file: Path | None = None  # the --config file when none is given
    parse: Callable | None = None  # parse(args, prog) -> what run takes, instead of parse_config

    def config_class(self) -> type:
        module, name = self.config.split(":")
        return getattr(import_module(module), name)


COMMANDS = {
    "loop-demo": Command(
        "the main job: the WMPO loop from nothing on the simulated Lift task (jobs/loop_demo.yaml)",
        "wmpo_jobs.loop_demo:LoopDemoConfig",
        cmd_loop_demo,
        default_file=JOBS / "loop_demo.yaml",
    ),
    "demo": Command(
        "closed loop on the simulated arm: scripted-expert episodes, one bag each", f"{__name__}:DemoConfig", cmd_demo
    ),
    "run": Command("start a mode's graph (sim | robot | imagine) until Ctrl-C", f"{__name__}:RunConfig", cmd_run),
    "graph": Command("print a mode's processes and nodes", f"{__name__}:GraphConfig", cmd_graph),
    "episodes": Command(
        "list the labels of episode bags (list DIR), or recover a killed recorder's (recover DIR)",
        f"{__name__}:EpisodesConfig",
        cmd_episodes,
    ),
    "label": Command("the operator labels the running episode success / failure", f"{__name__}:LabelConfig", cmd_label),
    "eval": Command(
        "greedy rollouts of a VLA checkpoint on initial states or seeds", f"{__name__}:EvalConfig", cmd_eval
    ),
    "dataset": Command("episode bags -> training dataset", f"{__name__}:DatasetConfig", cmd_dataset),
    "train-bc": Command("behaviour cloning of the VLA on datasets", "wmpo_policy.configs:BCConfig", cmd_train_bc),
    "base-policy": Command(
        "expert demos -> dataset -> BC -> held-out evaluation, per task (resumable)",
        "wmpo_jobs.base_policy:BasePolicyJob",
        cmd_base_policy,
        parse=parse_base_policy,
    ),
    "init-vla": Command(
        "a VLA checkpoint from local pretrained SigLIP + Llama folders", f"{__name__}:InitVLAConfig", cmd_init_vla
    ),
    "train-wm": Command("train or align the world model on datasets", "wmpo_worldmodel.configs:WMConfig", cmd_train_wm),
    "train-vae": Command(
        "train the AutoencoderKL of a latent world model", "wmpo_worldmodel.configs:VAEConfig", cmd_train_vae
    ),
    "train-reward": Command(
        "train the video success classifier, threshold by F1 or balanced accuracy",
        "wmpo_worldmodel.configs:RewardConfig",
        cmd_train_reward,
    ),
    "wm-study": Command(
        "world-model fidelity study (+/- alignment, +/- context noise)",
        "wmpo_jobs.configs:StudyConfig",
        cmd_wm_study,
    ),
    "wm-fidelity": Command(
        "trained world models on held-out real episodes: fidelity, outcome agreement",
        "wmpo_jobs.wm_fidelity:FidelityConfig",
        cmd_wm_fidelity,
    ),
    "train-wmpo": Command("GRPO of the VLA inside the world model", "wmpo_trainer.configs:WMPOConfig", cmd_train_wmpo),
    "dpo": Command("the DPO baseline on success/failure rollouts", "wmpo_trainer.configs:DPOConfig", cmd_dpo),
    "online-grpo": Command(
        "the model-free GRPO baseline on the simulated arm",
        "wmpo_trainer.configs:OnlineGRPOConfig",
        cmd_online_grpo,
    ),
    "loop": Command(
        "the WMPO loop on the simulated arm: collect, align, reward, GRPO in imagination, evaluate, deploy",
        "wmpo_jobs.configs:LoopConfig",
        cmd_loop,
    ),
    "report": Command(
        "a loop run's report page, RUN/report.html (success, gap, strips, curves)",
        f"{__name__}:ReportConfig",
        cmd_report,
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:{width}s}  {command.summary}" for name, command in COMMANDS.items()]
    return f"usage: wmpo COMMAND [--config FILE.yaml] [OPTIONS]\n\n{__doc__}\n\ncommands:\n" + "\n".join(lines)


def build(name: str, args: list[str]):
    """What command ``name``'s run function takes, from its command-line ``args`` (--help exits)."""
    command, prog = COMMANDS[name], f"wmpo {name}"
    if command.parse is not None:
        return command.parse(args, prog)
    return parse_config(command.config_class(), args, prog, command.default_file)


def main(argv=None) -> int:
    reuse_freed_memory()  # tensors reuse freed memory instead of fresh pages from the kernel
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"wmpo: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    config = build(name, args)
    # This process reads the ament index too (interface definitions for bags): same prefix as the nodes.
    os.environ["AMENT_PREFIX_PATH"] = node_environment()["AMENT_PREFIX_PATH"]
    try:
        return COMMANDS[name].run(config)
    except ConfigError as error:  # options that conflict with a checkpoint: the reason, no traceback
        raise SystemExit(f"wmpo {name}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
