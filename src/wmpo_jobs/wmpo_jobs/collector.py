"""Collections of real episodes: the ``Collector`` protocol that the loop, online GRPO and Table 1
take, its one report type, and the sim-graph collector.

  collect(task, checkpoint, goals, output, temperature) -> CollectionReport

Two collectors implement it: ``SimCollector`` (a sim graph of its own for each collection, started
by an ``EpisodeRunner``: wmpo_bringup.sim_episodes.run_sim_episodes, passed in by whoever builds
the job) and ``wmpo_jobs.graph_collector.GraphCollector`` (through the graph that runs beside a
node: sim or robot). Both resume a collection killed part way (only the goals without a finished
episode run again), both write <output>/summary.json, and both convert the collection's bags once
into <output>/dataset, one episode per goal.
"""

import json
from pathlib import Path
from typing import NotRequired, Protocol, TypedDict

from wmpo_common.success_rate import wilson_interval

SUMMARY_FILE = "summary.json"
DATASET_DIR = "dataset"


class CollectionReport(TypedDict):
    """What a collection reports (summary.json's content, plus the dataset from a collector)."""

    task: str
    episodes: int  # goals with a finished episode
    successes: int
    incomplete: int  # cut short by the graph (a node's timeout or crash), not the policy: counted as failures
    success_rate: float
    success_rate_95ci: list[float]  # Wilson score interval
    mean_success_length: float | None  # control steps, over the successes
    results: list[dict]  # per goal, in goal order: {"summary": EpisodeSummary fields, "bag_path": str}
    dataset: NotRequired[str]  # the dataset folder of the collection (one episode per goal with a kept bag)
    wall_time_s: NotRequired[float]  # how a sim-graph run went: its time, its sim graphs, the ones replaced
    workers: NotRequired[int]
    worker_replacements: NotRequired[int]


class Collector(Protocol):
    def __call__(
        self, task: str, checkpoint: str, goals: list[dict], output: Path, temperature: float
    ) -> CollectionReport:
        """Run one RunEpisode per goal (its fields: seed, init_state_id, max_steps, record_mode) with
        the VLA ``checkpoint`` sampling at ``temperature``, into ``output``; a collection resumed
        runs only the goals without a finished episode. Returns the report with "dataset"."""


class EpisodeRunner(Protocol):
    def __call__(
        self,
        task: str,
        goals: list[dict],
        output: Path,
        overrides: dict,
        title: str,
        workers: int = 1,
        ray_address: str | None = None,
    ) -> CollectionReport:
        """Start a sim graph with the node parameter ``overrides`` ({node: {parameter: value}}), run
        one RunEpisode per goal into ``output`` (resuming), print a table titled ``title``, write
        <output>/summary.json; ``workers`` sim graphs at once (Ray actors, or the cluster at
        ``ray_address``). Returns the report (no dataset)."""


def collection_report(task: str, results: list[dict], **run) -> CollectionReport:
    """The report of ``results`` (one per goal); ``run``: how it ran (wall_time_s, workers, ...)."""
    outcomes = [r["summary"]["outcome"] for r in results]
    successes = outcomes.count("success")
    lengths = [r["summary"]["num_steps"] for r in results if r["summary"]["outcome"] == "success"]
    low, high = wilson_interval(successes, len(results))
    return {
        "task": task,
        "episodes": len(results),
        "successes": successes,
        "incomplete": outcomes.count("incomplete"),
        "success_rate": successes / max(1, len(results)),
        "success_rate_95ci": [round(low, 4), round(high, 4)],
        "mean_success_length": float(sum(lengths) / len(lengths)) if lengths else None,
        **run,
        "results": results,
    }


def finished_collection(output: Path, goals: list[dict]) -> CollectionReport | None:
    """The report of a collection in ``output`` that finished every goal before (a re-run after a
    crash or a restart), else None."""
    summary = Path(output) / SUMMARY_FILE
    if summary.is_file():
        report = json.loads(summary.read_text())
        if report["episodes"] == len(goals):
            return report
    return None


def with_dataset(report: CollectionReport, output: Path) -> CollectionReport:
    """The report with its dataset, <output>/dataset: the kept, complete bags of its results
    converted once (one episode per goal)."""
    from wmpo_episodes.bag_conversion import bags_to_dataset
    from wmpo_episodes.collection import collected_bags

    dataset = Path(output) / DATASET_DIR
    if not dataset.exists():
        bags_to_dataset(collected_bags(report["results"]), dataset)
    return {**report, "dataset": str(dataset)}


def policy_server_device(device: str) -> dict:
    """The policy server's parameter for a torch device: none for the CPU, its default (so that a
    collection folder claimed before still matches its graph parameters)."""
    return {} if device == "cpu" else {"device": device}


def vla_policy_server(checkpoint: str | Path, temperature: float, device: str) -> dict:
    """The policy server's parameters that serve a VLA checkpoint at ``temperature`` on ``device``."""
    return {
        "backend": "vla",
        "checkpoint": str(Path(checkpoint).resolve()),
        "temperature": temperature,
        **policy_server_device(device),
    }


class SimCollector:
    """A ``Collector`` on the simulated arm: each collection starts its own sim graph through
    ``run_episodes`` (wmpo_bringup.sim_episodes.run_sim_episodes) serving the checkpoint on
    ``device``; ``workers`` / ``ray_address``: that many sim graphs at once (Ray actors)."""

    def __init__(self, run_episodes: EpisodeRunner, device: str = "cpu", workers: int = 1, ray_address=None):
        self.run_episodes = run_episodes
        self.device = device
        self.workers = workers
        self.ray_address = ray_address

    def __call__(
        self, task: str, checkpoint: str, goals: list[dict], output: Path, temperature: float
    ) -> CollectionReport:
        report = finished_collection(output, goals)
        if report is None:
            overrides = {"policy_server": vla_policy_server(checkpoint, temperature, self.device)}
            title = f"{task}: {len(goals)} episodes with {checkpoint} at temperature {temperature}"
            report = self.run_episodes(task, goals, Path(output), overrides, title, self.workers, self.ray_address)
        return with_dataset(report, output)
