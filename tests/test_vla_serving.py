"""The policy server serving a VLA checkpoint over ROS in the multi-process sim graph."""

import json

import numpy as np
import pytest
from graph_helpers import running_sim_graph
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from test_sim_graph import topic_messages
from test_vla_model import small_policy

from wmpo_bringup.cli import main
from wmpo_episodes.bag_conversion import read_episode_arrays
from wmpo_episodes.episodes import read_episode_info

pytestmark = pytest.mark.graph


def test_policy_server_serves_vla_chunks_in_the_running_graph(tmp_path, ros_domain):
    policy = small_policy()
    checkpoint = policy.save_pretrained(tmp_path / "vla")
    overrides = {"policy_server": {"backend": "vla", "checkpoint": str(checkpoint)}}
    deployed = small_policy(seed=1).save_pretrained(tmp_path / "deployed")
    with running_sim_graph(tmp_path, ros_domain, overrides) as (processes, client, episodes):
        result = client.run_episode("Lift", init_state_id=1000, max_steps=16, record_mode="all", timeout=180)
        # Deploying a new checkpoint is a parameter change; one that does not load is refused.
        parameters = AsyncParameterClient(client, "policy_server")
        assert parameters.wait_for_services(timeout_sec=30)
        for folder, accepted in ((tmp_path / "missing", False), (deployed, True)):
            future = parameters.set_parameters([Parameter("checkpoint", value=str(folder))])
            client.spin_until(future, timeout=60)
            assert future.result().results[0].successful is accepted, future.result().results[0].reason
        after = client.run_episode("Lift", init_state_id=1000, max_steps=8, record_mode="all", timeout=180)
        processes.check()
    assert after.summary["policy_id"] == f"vla/{deployed}"
    assert result.summary["outcome"] == "failure" and result.summary["num_steps"] == 16  # untrained: moves, fails
    assert result.summary["policy_id"] == f"vla/{checkpoint}"
    chunks = topic_messages(result.bag_path)["/policy_server/action_chunk"]
    assert len(chunks) == 2 and all(c.normalization_id == policy.stats.id for c in chunks)
    assert read_episode_info(result.bag_path).outcome == "failure"


def test_temporal_ensembling_blends_overlapping_chunks_in_the_graph(tmp_path, ros_domain):
    """execute_steps 4: a chunk every 4 steps. With a very large decay the oldest prediction for a
    step wins, so each served chunk's head repeats the previous chunk's tail."""
    checkpoint = small_policy().save_pretrained(tmp_path / "vla")
    overrides = {
        "policy_server": {
            "backend": "vla",
            "checkpoint": str(checkpoint),
            "temporal_ensembling": True,
            "ensemble_decay": 50.0,
        },
        "episode_manager": {"execute_steps": 4},
    }
    with running_sim_graph(tmp_path, ros_domain, overrides) as (processes, client, episodes):
        result = client.run_episode("Lift", init_state_id=1000, max_steps=12, record_mode="all", timeout=180)
        processes.check()
    assert result.summary["num_steps"] == 12 and result.summary["num_chunks"] == 3
    chunks = [np.array(c.actions).reshape(8, 7) for c in topic_messages(result.bag_path)["/policy_server/action_chunk"]]
    assert len(chunks) == 3
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        np.testing.assert_allclose(chunk[:4], previous[4:], atol=1e-6)
    assert not np.allclose(chunks[1][4:], chunks[0][4:])  # new steps come from the new prediction


def test_wmpo_eval_rolls_a_checkpoint_out_on_the_given_seeds(tmp_path, ros_domain):
    """`wmpo eval --seeds` evaluates on seeded scenes (the demonstrations' own: their training
    scenes), one bag each, instead of initial-state ids; --execute-steps asks for a new chunk
    every 4 steps instead of every K = 8."""
    checkpoint = small_policy().save_pretrained(tmp_path / "vla")
    output = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(checkpoint), "--seeds", "3,4", "--max-steps", "8", "--output", str(output)]
    assert main([*argv, "--execute-steps", "4"]) == 0
    results = json.loads((output / "summary.json").read_text())["results"]
    assert [(r["summary"]["seed"], r["summary"]["init_state_id"]) for r in results] == [(3, -1), (4, -1)]
    assert all(r["summary"]["num_steps"] == 8 and r["summary"]["num_chunks"] == 2 for r in results)
    # Each step's commanded action comes from the chunk that was running then (the second one,
    # served at step 4, takes over before the first one ends): what the arm was sent.
    arrays = read_episode_arrays(results[0]["bag_path"])
    sent = [m.action for m in topic_messages(results[0]["bag_path"])["/arm/commanded_action"]]
    np.testing.assert_allclose(arrays["commanded"], sent, atol=1e-6)
    cubes = [topic_messages(r["bag_path"])["/sim/task_state"][0].object_poses[0].position for r in results]
    assert (cubes[0].x, cubes[0].y) != (cubes[1].x, cubes[1].y)  # two seeds, two scenes
    with pytest.raises(SystemExit):  # one or the other
        main([*argv, "--init-states", "1000:1002"])


def test_a_sampling_policy_draws_the_same_chunks_for_the_same_goal_whatever_ran_before(tmp_path, ros_domain):
    """At temperature > 0 the policy server restarts its sampling from the goal's sampling seed:
    the same goal gets the same chunks after other episodes on this graph, as it would on any other
    graph (parallel workers), and another sampling seed other draws in the same scene."""
    checkpoint = small_policy().save_pretrained(tmp_path / "vla")
    overrides = {"policy_server": {"backend": "vla", "checkpoint": str(checkpoint), "temperature": 1.0}}

    def chunks(result) -> np.ndarray:
        return np.array([c.actions for c in topic_messages(result.bag_path)["/policy_server/action_chunk"]])

    with running_sim_graph(tmp_path, ros_domain, overrides) as (processes, client, episodes):
        goal = {"init_state_id": 1000, "max_steps": 16, "record_mode": "all", "timeout": 180}
        first = client.run_episode("Lift", sampling_seed=7, **goal)
        other = client.run_episode("Lift", sampling_seed=8, **goal)
        again = client.run_episode("Lift", sampling_seed=7, **goal)
        processes.check()
    assert chunks(first).shape == (2, 8 * 7)
    np.testing.assert_array_equal(chunks(again), chunks(first))
    assert not np.allclose(chunks(other), chunks(first))
