"""Collect real episodes through a running graph (sim or robot) from inside a node: deploy the
checkpoint on the policy server (a parameter change), run RunEpisode goals on the episode
manager, and convert the kept bags into a dataset. A ``wmpo_jobs.collector.Collector``, as
SimCollector is: the trainer node runs the loop with it.

Resumable: each result is added to <output>/results.json as it arrives, so a collection canceled
or killed part way runs only the goals still without a finished episode when it is called again.
"""

import json
import threading
from pathlib import Path

from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from wmpo_common.atomic_json import write_json
from wmpo_common.ros.action_goals import send_goal
from wmpo_episodes.collection import CollectionMismatch, assign, claim_folder, with_sampling_seeds
from wmpo_episodes.summary import summary_to_dict
from wmpo_interfaces.action import RunEpisode
from wmpo_jobs.collector import SUMMARY_FILE, CollectionReport, collection_report, finished_collection, with_dataset


class CollectionError(RuntimeError):
    """The graph did not answer or refused; the text says what."""


def done_within(future, timeout: float) -> bool:
    """Block this thread until an rclpy future is done (other executor threads complete it) or
    ``timeout`` s have passed; return whether it is done."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout)


def wait(future, timeout: float, what: str):
    """The result of an rclpy future done within ``timeout`` s; CollectionError if it is not."""
    if not done_within(future, timeout):
        raise CollectionError(f"{what}: no answer within {timeout:.0f} s")
    return future.result()


RESULTS_FILE = "results.json"


class GraphCollector:
    def __init__(self, node, should_stop=lambda: False, episode_timeout: float = 600.0):
        self.node = node
        self.should_stop = should_stop
        self.episode_timeout = episode_timeout
        self.episodes = ActionClient(node, RunEpisode, "episode_manager/run_episode")
        self.parameters = AsyncParameterClient(node, "policy_server")

    def deploy(self, checkpoint: str, temperature: float) -> None:
        if not self.parameters.wait_for_services(timeout_sec=30.0):
            raise CollectionError("policy_server parameters not available: is the sim or robot graph running?")
        values = [  # one at a time, each validated by the server; the backend last, once it can load
            Parameter("checkpoint", value=str(Path(checkpoint).resolve())),
            Parameter("temperature", value=float(temperature)),
            Parameter("backend", value="vla"),
        ]
        for parameter in values:
            answer = wait(self.parameters.set_parameters([parameter]), 120.0, "policy_server set_parameters")
            if not answer.results[0].successful:
                raise CollectionError(f"policy_server refused {parameter.name}: {answer.results[0].reason}")

    def __call__(
        self, task: str, checkpoint: str, goals: list[dict], output: Path, temperature: float
    ) -> CollectionReport:
        """Run the goals (resuming: only those without a finished episode in <output>/results.json)
        and convert their bags; returns the report, with "dataset": one episode per goal."""
        output = Path(output)
        report = finished_collection(output, goals)
        if report is None:
            spec = {"task": task, "checkpoint": str(Path(checkpoint).resolve()), "temperature": float(temperature)}
            try:
                claim_folder(output, spec)
            except CollectionMismatch as error:
                raise CollectionError(str(error)) from None
            progress = output / RESULTS_FILE  # every result so far, written after each episode
            finished = json.loads(progress.read_text()) if progress.is_file() else []
            slots = assign(task, goals, finished)
            if any(slot is None for slot in slots):
                self.deploy(checkpoint, temperature)
                if not self.episodes.wait_for_server(timeout_sec=30.0):
                    raise CollectionError("episode_manager/run_episode not available")
            for i, goal in enumerate(with_sampling_seeds(goals)):
                if slots[i] is not None:
                    continue
                if self.should_stop():
                    raise CollectionError("canceled")
                slots[i] = self._run(task, goal)
                finished.append(slots[i])
                write_json(progress, finished)
            report = collection_report(task, slots)
            write_json(output / SUMMARY_FILE, report)
        return with_dataset(report, output)

    def _run(self, task: str, goal: dict) -> dict:
        """One RunEpisode goal -> its result {"summary", "bag_path"}."""
        request = RunEpisode.Goal(task=task, seed=-1, **{k: v for k, v in goal.items()})
        handle = send_goal(self.episodes, request, done_within)
        if handle is None:
            raise CollectionError("RunEpisode goal: no answer within 30 s")
        if not handle.accepted:
            raise CollectionError("the episode manager rejected the goal")
        answer = wait(handle.get_result_async(), self.episode_timeout, "RunEpisode result").result
        return {"summary": summary_to_dict(answer.summary), "bag_path": answer.bag_path}
