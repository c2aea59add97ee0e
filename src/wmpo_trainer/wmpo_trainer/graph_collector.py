"""Collect real episodes through a running graph (sim or robot) from inside a node: deploy the
checkpoint on the policy server (a parameter change), run RunEpisode goals on the episode
manager, and convert the kept bags into a dataset. Same call as SimCollector, for the loop.
"""

import json
import threading
from pathlib import Path

from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from wmpo_episodes.action_goals import send_goal
from wmpo_episodes.bag_conversion import read_episode_arrays
from wmpo_episodes.dataset import write_dataset
from wmpo_episodes.success_rate import wilson_interval
from wmpo_episodes.summary import summary_to_dict
from wmpo_interfaces.action import RunEpisode


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

    def __call__(self, task: str, checkpoint: str, goals: list[dict], output: Path, temperature: float) -> dict:
        output = Path(output)
        summary_file = output / "summary.json"
        if summary_file.is_file() and json.loads(summary_file.read_text())["episodes"] == len(goals):
            report = json.loads(summary_file.read_text())
        else:
            self.deploy(checkpoint, temperature)
            if not self.episodes.wait_for_server(timeout_sec=30.0):
                raise CollectionError("episode_manager/run_episode not available")
            results = []
            for goal in goals:
                if self.should_stop():
                    raise CollectionError("canceled")
                request = RunEpisode.Goal(task=task, seed=-1, **{k: v for k, v in goal.items()})
                handle = send_goal(self.episodes, request, done_within)
                if handle is None:
                    raise CollectionError("RunEpisode goal: no answer within 30 s")
                if not handle.accepted:
                    raise CollectionError("the episode manager rejected the goal")
                answer = wait(handle.get_result_async(), self.episode_timeout, "RunEpisode result").result
                results.append({"summary": summary_to_dict(answer.summary), "bag_path": answer.bag_path})
            successes = sum(r["summary"]["outcome"] == "success" for r in results)
            low, high = wilson_interval(successes, len(results))
            report = {
                "task": task,
                "episodes": len(results),
                "successes": successes,
                "success_rate": successes / max(1, len(results)),
                "success_rate_95ci": [round(low, 4), round(high, 4)],
                "results": results,
            }
            output.mkdir(parents=True, exist_ok=True)
            summary_file.write_text(json.dumps(report, indent=2))
        dataset = output / "dataset"
        if not dataset.exists():
            kept = [r for r in report["results"] if r["bag_path"] and r["summary"]["outcome"] != "incomplete"]
            episodes = (
                ({**r["summary"], "bag": r["bag_path"]}, read_episode_arrays(Path(r["bag_path"]))) for r in kept
            )
            write_dataset(dataset, episodes)
        return {**report, "dataset": str(dataset)}
