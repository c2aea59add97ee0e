"""A collection resumed after a kill runs only the goals without a finished episode, and its
dataset holds one episode per goal (both collectors: the sim graph's and the graph node's)."""

import json

import pytest
from episode_fakes import record_episode, summary_message

from wmpo_episodes.dataset import EpisodeDataset

TASK = "Lift"
# An online-GRPO collection: two start states, a group of two alike goals each.
GOALS = [{"init_state_id": i, "max_steps": 4, "record_mode": "all"} for i in (5000, 5000, 5001, 5001)]


class Killed(Exception):
    """The collecting process dies (SIGKILL) after some episodes."""


def test_finished_episodes_are_assigned_one_goal_each_alike_goals_included():
    from wmpo_episodes.collection import assign

    def result(init_state_id, outcome="success", max_steps=4):
        summary = {"task": TASK, "seed": -1, "init_state_id": init_state_id, "max_steps": max_steps}
        return {"summary": {**summary, "outcome": outcome, "instruction": "lift"}, "bag_path": "b"}

    finished = [result(5000), result(5000), result(5000), result(5001, "incomplete"), result(5001, max_steps=9)]
    slots = assign(TASK, GOALS, finished)
    assert slots[:2] == finished[:2]  # a third episode of start state 5000 is one too many: left out
    assert slots[2:] == [None, None]  # incomplete, or another step budget: still to run
    assert assign("Square", GOALS[:1], finished[:1]) == [None]
    assert assign(TASK, [{"seed": 3}], [result(-1)]) == [None]


@pytest.fixture
def fake_sim_graph(monkeypatch, ros_domain):
    """run_sim_episodes' graph and episode client, replaced: each goal records a real bag."""
    import os

    import rclpy

    import wmpo_bringup.episode_client as episode_client
    import wmpo_bringup.runner as runner
    from wmpo_bringup.episode_client import EpisodeResult

    monkeypatch.setenv("RMW_IMPLEMENTATION", os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"))
    state = {"ran": [], "kill_after": None}

    class Graph:
        def __init__(self, mode, log_dir, overrides=None, env=None, **_):
            state["episodes"] = overrides["recorder"]["output_dir"]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def check(self):
            return None

    class Client:
        def __init__(self, name):
            pass

        def wait_for_graph(self, timeout):
            return True

        def run_episode(self, task, **goal):
            if state["kill_after"] is not None and len(state["ran"]) >= state["kill_after"]:
                raise Killed
            state["ran"].append(goal)
            summary, path = record_episode(state["episodes"], task, goal)
            return EpisodeResult(summary, str(path))

        def destroy_node(self):
            return None

    monkeypatch.setattr(runner, "GraphProcesses", Graph)
    monkeypatch.setattr(episode_client, "EpisodeClient", Client)
    monkeypatch.setattr(rclpy, "init", lambda **_: None)
    monkeypatch.setattr(rclpy, "try_shutdown", lambda **_: None)
    return state


def test_sim_collection_resumed_after_a_kill_runs_only_the_missing_goals(fake_sim_graph, tmp_path):
    from wmpo_bringup.sim_episodes import run_sim_episodes
    from wmpo_jobs.collector import SimCollector

    output = tmp_path / "iter_1"
    fake_sim_graph["kill_after"] = 3  # the second group is half done
    with pytest.raises(Killed):
        SimCollector(run_sim_episodes)(TASK, str(tmp_path / "policy"), GOALS, output, 1.0)
    fake_sim_graph.update(ran=[], kill_after=None)
    report = SimCollector(run_sim_episodes)(TASK, str(tmp_path / "policy"), GOALS, output, 1.0)
    # Each goal samples from the seed of its place in the list, resumed or not: the draws it would
    # have had, and the group's alike goals draw apart.
    assert fake_sim_graph["ran"] == [{**goal, "sampling_seed": i} for i, goal in enumerate(GOALS)][3:]
    assert report["episodes"] == 4 and json.loads((output / "summary.json").read_text())["episodes"] == 4
    records = EpisodeDataset(report["dataset"]).records
    assert sorted(r.init_state_id for r in records) == [5000, 5000, 5001, 5001]
    assert len({r.episode_id for r in records}) == 4


def test_sim_collection_refuses_to_resume_another_collections_folder(fake_sim_graph, tmp_path):
    from wmpo_bringup.sim_episodes import run_sim_episodes
    from wmpo_jobs.collector import SimCollector

    output = tmp_path / "eval"
    fake_sim_graph["kill_after"] = 1
    with pytest.raises(Killed):
        SimCollector(run_sim_episodes)(TASK, str(tmp_path / "policy_a"), GOALS, output, 0.0)
    fake_sim_graph.update(ran=[], kill_after=None)
    with pytest.raises(SystemExit):
        SimCollector(run_sim_episodes)(TASK, str(tmp_path / "policy_b"), GOALS, output, 0.0)
    assert fake_sim_graph["ran"] == []  # policy_b's episodes would have been mixed with policy_a's


def test_graph_collection_resumed_after_a_cancel_runs_only_the_missing_goals(rclpy_context, tmp_path, monkeypatch):
    from rclpy.node import Node

    import wmpo_jobs.graph_collector as graph_collector
    from wmpo_jobs.graph_collector import CollectionError, GraphCollector

    sent = []

    class Done:
        """A goal's result future, already done."""

        def __init__(self, value):
            self.value = value

        def add_done_callback(self, callback):
            callback(self)

        def result(self):
            return self.value

    class Handle:
        accepted = True

        def __init__(self, request):
            summary, path = record_episode(tmp_path / "graph_episodes", request.task, goal_of(request))
            answer = type("Answer", (), {"summary": summary_message(summary), "bag_path": str(path)})
            self.answer = type("Wrapped", (), {"result": answer})

        def get_result_async(self):
            return Done(self.answer)

    def goal_of(request):
        return {
            "init_state_id": request.init_state_id,
            "max_steps": request.max_steps,
            "seed": request.seed,
            "sampling_seed": request.sampling_seed,
        }

    def fake_send_goal(client, request, wait):
        sent.append(goal_of(request))
        return Handle(request)

    monkeypatch.setattr(graph_collector, "send_goal", fake_send_goal)
    node = Node("collector_test", context=rclpy_context)
    try:
        stop = {"after": 3}
        collector = GraphCollector(node, should_stop=lambda: stop["after"] is not None and len(sent) >= stop["after"])
        collector.deploy = lambda checkpoint, temperature: None
        collector.episodes = type("Server", (), {"wait_for_server": lambda self, timeout_sec: True})()
        output = tmp_path / "rollouts"
        with pytest.raises(CollectionError, match="canceled"):
            collector(TASK, str(tmp_path / "policy"), GOALS, output, 1.0)
        sent.clear()
        stop["after"] = None
        report = collector(TASK, str(tmp_path / "policy"), GOALS, output, 1.0)
    finally:
        node.destroy_node()
    assert sent == [{"init_state_id": 5001, "max_steps": 4, "seed": -1, "sampling_seed": 3}]  # the 4th goal's
    assert report["episodes"] == 4
    records = EpisodeDataset(report["dataset"]).records
    assert sorted(r.init_state_id for r in records) == [5000, 5000, 5001, 5001]


def test_online_grpo_refuses_a_collection_with_more_episodes_of_a_start_state_than_g(tmp_path):
    from test_reward_model import toy_episode
    from test_vla_model import small_policy

    from wmpo_episodes.dataset import write_dataset
    from wmpo_trainer.configs import GRPOConfig, OnlineGRPOConfig
    from wmpo_trainer.online_grpo import train

    def duplicated(task, checkpoint, goals, output, temperature):  # start state 5000 collected twice
        episodes = [toy_episode(i, success=i % 2 == 0, steps=8) for i in range(len(goals) + 2)]
        starts = [g["init_state_id"] for g in goals] + [5000, 5000]
        write_dataset(
            output / "dataset", [({**s, "init_state_id": i}, a) for (s, a), i in zip(episodes, starts, strict=True)]
        )
        return {"dataset": str(output / "dataset")}

    policy = small_policy().save_pretrained(tmp_path / "policy")
    config = OnlineGRPOConfig(
        policy=str(policy),
        task=TASK,
        output=str(tmp_path / "online"),
        budget=4,
        groups_per_iteration=2,
        first_init_state=5000,
        grpo=GRPOConfig(group_size=2),
        threads=1,
    )
    with pytest.raises(ValueError, match="start state 5000: 4 episodes, G = 2"):
        train(config, duplicated)


def test_both_collectors_implement_the_one_collector_protocol():
    """SimCollector and GraphCollector take the same call and return the one report type."""
    import inspect

    from wmpo_jobs.collector import Collector, SimCollector
    from wmpo_jobs.graph_collector import GraphCollector

    protocol = inspect.signature(Collector.__call__)
    for collector in (SimCollector, GraphCollector):
        assert inspect.signature(collector.__call__) == protocol, collector.__name__
