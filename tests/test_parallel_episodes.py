"""Sim episodes on several sim graphs at once (Ray actors, wmpo_bringup.sim_workers): the same goals
give the same episodes as one graph, in goal order; a worker killed mid-episode is replaced, its
episode re-run once and counted once."""

import os
from pathlib import Path

import numpy as np
import pytest
from graph_helpers import FAST_SIM

from wmpo_episodes.bag_conversion import read_episode_arrays
from wmpo_episodes.collection import assign
from wmpo_episodes.episodes import list_episodes

pytestmark = pytest.mark.graph

TASK = "Lift"
# The first goal succeeds (the expert lifts at step 84), the others are cut short by their budget,
# so the second goal ends long before the first: results come back out of goal order.
GOALS = [
    {"seed": 100, "max_steps": 100, "record_mode": "all"},
    {"seed": 101, "max_steps": 20, "record_mode": "all"},
    {"init_state_id": 1000, "max_steps": 20, "record_mode": "all"},
    {"seed": 103, "max_steps": 20, "record_mode": "all"},
]
SAME = (
    "task",
    "seed",
    "init_state_id",
    "max_steps",
    "outcome",
    "num_steps",
    "num_chunks",
    "success_step",
    "safety_interventions",
    "instruction",
    "policy_id",
)


def run(output: Path, workers: int) -> dict:
    from wmpo_bringup.sim_episodes import run_sim_episodes

    return run_sim_episodes(TASK, GOALS, output, FAST_SIM, "test", workers=workers)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The goals on one graph, in this process (the path without Ray)."""
    from conftest import next_domain_id

    output = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_DOMAIN_ID", str(next_domain_id()))
        report = run(output, workers=1)
    assert report["workers"] == 1 and report["worker_replacements"] == 0
    assert [r["summary"]["outcome"] for r in report["results"]] == ["success", "failure", "failure", "failure"]
    return report


def graph_processes_of(output: Path) -> list[int]:
    """Live processes started with a params file under ``output`` (the node processes of its graphs):
    none once a run has returned (stopped, or killed with their worker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(output) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def assert_same_episodes(report: dict, serial: dict, output: Path) -> None:
    """Per goal, in goal order: the serial run's episode (its label, its reset frame and the actions
    it executed)."""
    assert report["episodes"] == len(GOALS) == len(report["results"])
    for goal, got, want in zip(GOALS, report["results"], serial["results"], strict=True):
        assert {k: got["summary"][k] for k in SAME} == {k: want["summary"][k] for k in SAME}, goal
        assert Path(got["bag_path"]).parent == output / "episodes"
        # The same trajectory, up to the graph's own run-to-run jitter: two serial runs' executed
        # actions differ by up to ~1e-2 (more under load), their reset frames by < 0.2 grey levels
        # on average; another scene differs by ~0.3 and > 3 levels.
        ours, theirs = (read_episode_arrays(Path(r["bag_path"])) for r in (got, want))
        np.testing.assert_allclose(ours["actions"], theirs["actions"], rtol=0, atol=0.05, err_msg=str(goal))
        assert np.abs(ours["frames"][0].astype(float) - theirs["frames"][0]).mean() < 1.0, goal
    for key in ("successes", "incomplete", "success_rate", "success_rate_95ci", "mean_success_length"):
        assert report[key] == serial[key], key
    # One finished bag per goal in the episodes folder, each serving its own goal; nothing else.
    finished = [{"summary": e.summary, "bag_path": str(e.path)} for e in list_episodes(output / "episodes")]
    assert len(finished) == len(GOALS)
    assert sorted(r["bag_path"] for r in assign(TASK, GOALS, finished)) == sorted(
        r["bag_path"] for r in report["results"]
    )


def test_two_workers_give_the_serial_runs_episodes_in_goal_order(serial, tmp_path):
    import ray

    output = tmp_path / "parallel"
    report = run(output, workers=2)
    assert report["workers"] == 2 and report["worker_replacements"] == 0
    assert_same_episodes(report, serial, output)
    # The second goal finished first (20 steps against 84), yet the results are in goal order.
    starts = [r["summary"]["start_time"] for r in report["results"]]
    ends = [r["summary"]["end_time"] for r in report["results"]]
    assert ends[1] < ends[0] and starts[1] < ends[0]  # run side by side
    assert sorted(p.name for p in (output / "logs").iterdir()) == ["worker_0", "worker_1"]
    assert not ray.is_initialized()  # the local instance it started is shut down
    assert graph_processes_of(output) == []


def test_a_worker_killed_mid_episode_is_replaced_and_its_episode_run_again_once(serial, tmp_path, monkeypatch):
    import wmpo_bringup.sim_workers as sim_workers

    monkeypatch.setattr(sim_workers, "CRASH_AT_STEP", {0: 5})  # worker 0 dies at step 5 of its first goal
    # Ray 2.60 kills a crashed worker's process group itself, by default; a cluster may not. With
    # that off, the worker's own mechanism must take its graph down with it.
    monkeypatch.setenv("RAY_process_group_cleanup_enabled", "false")
    output = tmp_path / "crashed"
    report = run(output, workers=2)
    assert report["worker_replacements"] == 1
    assert sorted(p.name for p in (output / "logs").iterdir()) == ["worker_0", "worker_1", "worker_2"]
    assert_same_episodes(report, serial, output)  # the re-run episode is the one it would have been
    # The killed run left its partial recording in its own folder, never moved, never counted; no
    # finished bag stays behind in a worker's folder.
    staged = list((output / "workers").glob("*/.incoming/*"))
    assert [p.parts[-3] for p in staged] == ["worker_0"], staged
    assert list_episodes(output / "workers" / "worker_0") == []
    assert all(list_episodes(folder) == [] for folder in (output / "workers").iterdir())
    # Its graph's node processes died with it.
    assert graph_processes_of(output) == []


def test_workers_on_one_machine_take_distinct_domain_ids_outside_the_tests_and_serial_range(tmp_path):
    from wmpo_bringup.sim_workers import claim_domain

    claims = [claim_domain(0, tmp_path), claim_domain(0, tmp_path), claim_domain(5, tmp_path)]
    domains = [domain for domain, _ in claims]
    assert domains == [215, 216, 220] and all(d > 100 for d in domains)
    claims[0][1].close()  # a worker that ends frees its id
    again, lock = claim_domain(0, tmp_path)
    assert again == 215
    for _, handle in [*claims[1:], (again, lock)]:
        handle.close()
