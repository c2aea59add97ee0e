"""Sim episodes on N sim graphs at once: Ray actors (``SimGraphWorker``), each owning one sim graph
(its node processes) on its own ROS_DOMAIN_ID, take the pending RunEpisode goals from one queue.

``run_on_workers`` is the parallel path of ``sim_episodes.run_sim_episodes``: N local workers (a
local Ray instance of N CPUs, started here and shut down after) or the workers of an existing Ray
cluster (``ray_address``; the output folder must then be on a filesystem every node sees at the
same path). A free worker takes the next pending goal; its result goes into the goal's slot, so
the results are in goal order whatever the order they finish in.

Layout of <output> in a parallel run:
  episodes/           every finished episode bag, as in a serial run: a worker records into its
                      own folder and the driver moves the bag here when the result reaches it
  workers/worker_<k>/ worker k's recorder folder. A worker that dies mid-episode leaves its
                      partial bag in .incoming/ here; it is never moved, so never counted
  logs/worker_<k>/    worker k's node logs (ros/ for the ROS logs)

Each worker records into its own folder because a recorder, when it starts, recovers every bag in
its folder's .incoming/ as an interrupted episode: in a shared folder, a worker started (or
replaced) while another is recording would take that other worker's live bag.

A worker that dies (its process killed, a node process of its graph exited, an episode that does
not end within the timeout, a graph that does not come up) is killed with its graph and replaced
by a new worker with a new graph; the goal it was running goes back to the front of the queue.
Its episode is counted once: only the driver moves bags into episodes/, and only for the result it
received. At most ``RERUNS_PER_GOAL`` re-runs of one goal and ``2 * workers`` replacements in all,
then ``WorkersFailed`` (the finished episodes stay, so the run resumes).

Domain ids: a worker takes, under a lock file held for its life (per machine, in the temp folder),
the first free id of ``WORKER_DOMAINS``: 215-232 (above Linux's ephemeral port range, unused by the
serial path and the tests, which take 1-100), then 102-214, starting at an offset per worker so a
replacement does not reuse the id its predecessor just left. Two parallel runs on one machine take
distinct ids; discovery stays on the machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).

A worker's graph processes die with the worker (PR_SET_PDEATHSIG on Linux), so a killed worker
leaves no node processes behind.

Same goals, same episodes as a serial run: scenes and action noise are seeded per goal, and a
sampling VLA (temperature > 0) restarts its draws from the goal's sampling seed
(``wmpo_episodes.collection.with_sampling_seeds``): the same outcomes, lengths and success steps,
and trajectories alike up to the sim graph's own run-to-run jitter (two serial runs of the expert
differ by up to ~1e-2 in their executed actions, more under load; episode ids and bag paths differ
too). One thing depends on a graph's history and so may differ: which successes
``record_mode: failures`` keeps (the n-th success of a graph is kept by ``success_share``; outcomes
are the same).
"""

import collections
import contextlib
import fcntl
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from wmpo_bringup.runner import GraphError, GraphProcesses

WORKER_DOMAINS = (*range(215, 233), *range(102, 215))
DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "wmpo_ros_domains"
RERUNS_PER_GOAL = 2
START_TIMEOUT_S = 180.0  # a sim graph's nodes up and discovered (N graphs start at once)
EPISODE_TIMEOUT_S = 600.0  # as EpisodeClient.run_episode's
# Variables a worker's process (and so its graph) needs from the driver's environment; the domain
# id and the log folder are the worker's own.
FORWARDED_PREFIXES = ("ROS_", "RMW_", "AMENT_", "MUJOCO_", "PYOPENGL_", "LP_", "OMP_", "MKL_", "PYTHON")
NOT_FORWARDED = ("ROS_DOMAIN_ID", "ROS_LOG_DIR")

# Test hook: {worker id: step}. That worker kills its own process (SIGKILL, as a crash would) once
# its first episode has reported that step. Read by the driver when it starts worker processes.
CRASH_AT_STEP: dict[int, int] = {}

# Run by the interpreter that then becomes a node process (execv keeps the pid): the node gets
# SIGKILL when the worker that started it dies; it exits at once if the worker is already gone.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class WorkersFailed(RuntimeError):
    """Too many workers died; the text says which goal and why (the last worker's error)."""


def claim_domain(first: int = 0, lock_dir: Path = DOMAIN_LOCKS):
    """(domain id, open lock file): the first id of WORKER_DOMAINS, from index ``first`` on, that no
    other process on this machine holds. The lock is released when the file is closed or the
    process dies."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for n in range(len(WORKER_DOMAINS)):
        domain = WORKER_DOMAINS[(first + n) % len(WORKER_DOMAINS)]
        try:
            handle = open(lock_dir / f"{domain}.lock", "a")  # noqa: SIM115  (held for the worker's life)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError(f"every ROS domain id of {WORKER_DOMAINS[0]}-{WORKER_DOMAINS[-1]} is taken on this machine")


def worker_environment(environ=None) -> dict:
    """The variables a worker's process gets from the driver (Ray runtime_env env_vars): what the
    nodes need (node_environment: AMENT_PREFIX_PATH, RMW_IMPLEMENTATION, local discovery, ...)."""
    from wmpo_bringup.environment import node_environment

    env = node_environment() if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) and k not in NOT_FORWARDED}


class SimGraphWorker:
    """A Ray actor: one sim graph (GraphProcesses) on its own domain id, and an episode client.

    ``start()`` brings the graph up (and returns where it runs); ``run(task, goal)`` runs one
    RunEpisode goal and returns its result {"summary", "bag_path"} (the bag still in the worker's
    own folder); ``close()`` stops the graph. Any failure raises: the driver replaces the worker.
    """

    def __init__(self, worker_id: int, output: str, overrides: dict, crash_at_step: int | None = None):
        self.worker_id = worker_id
        self.name = f"worker_{worker_id}"
        self.output = Path(output)
        self.log_dir = self.output / "logs" / self.name
        self.recordings = self.output / "workers" / self.name
        recorder = {**overrides.get("recorder", {}), "output_dir": str(self.recordings)}
        self.overrides = {**overrides, "recorder": recorder}
        self.crash_at_step = crash_at_step
        self.processes = self.client = self.context = None

    def start(self) -> dict:
        import rclpy

        from wmpo_bringup.environment import node_environment
        from wmpo_bringup.episode_client import EpisodeClient

        self.domain, self._lock = claim_domain(self.worker_id)
        env = node_environment(domain_id=self.domain, log_dir=str(self.log_dir / "ros"))
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "RMW_", "AMENT_"))})
        self.processes = WorkerGraph("sim", self.log_dir, overrides=self.overrides, env=env).start()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.client = EpisodeClient(f"wmpo_{self.name}", context=self.context)
        if not self.client.wait_for_graph(timeout=START_TIMEOUT_S):
            self.processes.check()
            raise GraphError(f"the episode manager and its services did not come up within {START_TIMEOUT_S:.0f} s")
        return {"worker": self.worker_id, "domain": self.domain, "host": socket.gethostname(), "pid": os.getpid()}

    def run(self, task: str, goal: dict) -> dict:
        from wmpo_episodes.collection import GOAL_DEFAULTS
        from wmpo_episodes.summary import summary_to_dict
        from wmpo_interfaces.action import RunEpisode

        self.processes.check()
        # A goal's unset fields as EpisodeClient.run_episode sets them (-1: none), not the message's 0.
        request = RunEpisode.Goal(task=task, **{**GOAL_DEFAULTS, **goal})
        handle = self.client.send_episode_goal(request, self._on_feedback)
        if handle is None or not handle.accepted:
            raise GraphError(f"the episode manager did not accept the goal {goal}")
        result = handle.get_result_async()
        deadline = time.monotonic() + EPISODE_TIMEOUT_S
        while not result.done():  # the graph's processes are checked while the episode runs
            self.processes.check()
            if time.monotonic() > deadline:
                handle.cancel_goal_async()
                raise TimeoutError(f"episode {goal} did not finish within {EPISODE_TIMEOUT_S:.0f} s")
            self.client.spin_until(result, 1.0)
        answer = result.result().result
        self.crash_at_step = None  # the hook is for the first episode only
        return {"summary": summary_to_dict(answer.summary), "bag_path": answer.bag_path}

    def _on_feedback(self, message) -> None:
        if self.crash_at_step is not None and message.feedback.step >= self.crash_at_step:
            os.kill(os.getpid(), signal.SIGKILL)

    def close(self) -> None:
        import rclpy

        if self.client is not None:
            self.client.destroy_node()
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        if self.processes is not None:
            self.processes.stop()


class WorkerGraph(GraphProcesses):
    """GraphProcesses whose node processes die with the worker process that started them."""

    def command(self, spec, overrides_file):
        command = super().command(spec, overrides_file)
        if not sys.platform.startswith("linux"):
            return command
        return [sys.executable, "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def move_bag(bag_path: str, episodes: Path) -> str:
    """Move a finished episode bag from a worker's folder into ``episodes`` (same filesystem:
    a rename, atomic); return its new path ("" stays "": the bag was not kept)."""
    if not bag_path:
        return ""
    source = Path(bag_path)
    target = episodes / source.name
    episodes.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(f"{target} exists already: episode ids collided")
    os.rename(source, target)
    return str(target)


def run_on_workers(
    task: str,
    goals: list[dict],
    pending: list[int],
    slots: list[dict | None],
    output: Path,
    overrides: dict,
    workers: int,
    ray_address: str | None = None,
    on_result=None,
    log=print,
) -> int:
    """Run ``goals[i]`` for every i of ``pending`` on ``workers`` sim graphs; put each result in
    ``slots[i]`` (bag moved into <output>/episodes) and call ``on_result(i)``. Returns how many
    workers were replaced. WorkersFailed when workers keep dying (see the module docstring)."""
    import ray
    from ray.exceptions import RayError

    output = Path(output)
    episodes = output / "episodes"
    queue = collections.deque(pending)
    count = min(workers, len(queue))
    started_ray = not ray.is_initialized()
    if started_ray:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=count, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_restarts=0)(SimGraphWorker)
    runtime_env = {"env_vars": worker_environment()}
    actors: dict[int, object] = {}
    waiting: dict[object, tuple[int, int | None]] = {}  # ObjectRef -> (worker id, goal index or None: start)
    closing = []
    reruns: collections.Counter = collections.Counter()
    next_id = iter(range(10**9))
    replacements = 0

    def launch() -> None:
        k = next(next_id)
        actor = remote.options(runtime_env=runtime_env).remote(k, str(output), overrides, CRASH_AT_STEP.get(k))
        actors[k] = actor
        waiting[actor.start.remote()] = (k, None)

    def retire(k: int) -> None:
        closing.append(actors[k].close.remote())

    try:
        for _ in range(count):
            launch()
        while queue or any(i is not None for _, i in waiting.values()):
            (ref,), _ = ray.wait(list(waiting), num_returns=1)
            k, i = waiting.pop(ref)
            try:
                value, error = ray.get(ref), None
            except RayError as raised:
                value, error = None, raised
            if error is not None:  # the worker is gone, or its graph is: kill it (its graph dies with it)
                with contextlib.suppress(RayError):
                    ray.kill(actors.pop(k))
                doing = "starting its sim graph" if i is None else f"running goal {i} {goals[i]}"
                log(f"worker {k} failed {doing}: {_first_line(error)}; logs in {output / 'logs' / f'worker_{k}'}")
                if i is not None:
                    reruns[i] += 1
                    if reruns[i] > RERUNS_PER_GOAL:
                        raise WorkersFailed(f"goal {i} {goals[i]}: {reruns[i]} workers died running it; last: {error}")
                    queue.appendleft(i)  # run again, next
                if queue:  # work left: a new worker (a new graph) takes this one's place
                    replacements += 1
                    if replacements > 2 * workers:
                        raise WorkersFailed(f"{replacements - 1} workers replaced already; last: {error}")
                    launch()
                continue
            if i is None:
                log(f"worker {k}: sim graph on ROS_DOMAIN_ID={value['domain']} ({value['host']}, pid {value['pid']})")
            else:
                slots[i] = {"summary": value["summary"], "bag_path": move_bag(value["bag_path"], episodes)}
                if on_result is not None:
                    on_result(i)
            if queue:
                i = queue.popleft()
                waiting[actors[k].run.remote(task, goals[i])] = (k, i)
            else:
                retire(k)
    finally:
        if closing:  # idle workers stop their graphs (SIGINT); then every worker process goes
            with contextlib.suppress(RayError):
                ray.wait(closing, num_returns=len(closing), timeout=30)
        for actor in actors.values():
            with contextlib.suppress(RayError):
                ray.kill(actor)
        if started_ray:
            ray.shutdown()
    return replacements


def _first_line(error: BaseException) -> str:
    """The first line of what went wrong in a worker (its own exception, for a task that raised)."""
    cause = getattr(error, "cause", None) or error
    lines = [line for line in str(cause).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(cause).__name__
