"""The sim graph as real processes on DDS: episodes run, are recorded, labelled and read back."""

from pathlib import Path

import pytest
from graph_helpers import running_sim_graph
from mcap_ros2.reader import read_ros2_messages
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.task import Future
from rosbags.highlevel import AnyReader

from wmpo_bringup.label_client import LabelClient
from wmpo_episodes.episodes import list_episodes, read_episode_info
from wmpo_episodes.typestore import episode_typestore
from wmpo_interfaces.action import RunEpisode

pytestmark = pytest.mark.graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    from conftest import next_domain_id

    with running_sim_graph(tmp_path_factory.mktemp("sim_graph"), next_domain_id()) as running:
        yield running


def topic_messages(bag):
    with AnyReader([Path(bag)], default_typestore=episode_typestore()) as reader:
        out = {}
        for connection, _, raw in reader.messages():
            out.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    return out


def test_lift_episodes_with_the_scripted_expert_mostly_succeed_and_are_recorded(graph):
    processes, client, episodes_dir = graph
    results = [client.run_episode("Lift", seed=seed, record_mode="all", timeout=240) for seed in (10, 11, 12)]
    outcomes = [r.summary["outcome"] for r in results]
    assert outcomes.count("success") >= 2, outcomes
    for result in results:
        s = result.summary
        info = read_episode_info(result.bag_path)
        assert info.outcome == s["outcome"] and info.summary["num_steps"] == s["num_steps"]
        topics = topic_messages(result.bag_path)
        # One frame per control step (+ the reset frame), one commanded/executed action per step.
        assert len(topics["/arm/executed_action"]) == s["num_steps"]
        assert len(topics["/arm/commanded_action"]) == s["num_steps"]
        assert [m.step for m in topics["/arm/executed_action"]] == list(range(s["num_steps"]))
        assert len(topics["/camera/image_raw"]) == s["num_steps"] + 1
        assert len(topics["/arm/joint_states"]) == s["num_steps"] + 1
        chunks = topics["/policy_server/action_chunk"]
        assert len(chunks) == s["num_chunks"] and chunks[0].policy_id == "scripted_expert/Lift"
        assert len(topics["/policy_server/action_chunk_markers"]) == len(chunks)  # each chunk's path (Foxglove)
        assert [m.ns for m in topics["/arm/safety_box"]] == ["safety_box"]  # latched at start-up, in every bag
        assert topics["/instruction"][0].data == "pick up the red cube"
        assert topics["/episode/summary"][0].outcome == s["outcome"]
        if s["outcome"] == "success":
            assert topics["/sim/task_state"][-1].success and s["success_step"] == s["num_steps"]
    # The independent MCAP reader decodes the same bag, custom types included.
    mcap_file = next(p for p in Path(results[0].bag_path).iterdir() if p.suffix == ".mcap")
    decoded = [m for m in read_ros2_messages(str(mcap_file)) if m.channel.topic == "/arm/executed_action"]
    assert len(decoded) == results[0].summary["num_steps"] and len(decoded[0].ros_msg.action) == 7
    processes.check()


def test_failures_only_mode_keeps_failures_and_drops_successes(graph):
    processes, client, episodes_dir = graph
    failure = client.run_episode("Lift", seed=0, max_steps=16, record_mode="failures", timeout=120)
    success = client.run_episode("Lift", seed=0, record_mode="failures", timeout=240)
    assert failure.summary["outcome"] == "failure" and failure.summary["num_steps"] == 16
    assert read_episode_info(failure.bag_path).outcome == "failure"
    assert success.summary["outcome"] == "success" and success.bag_path == ""
    kept = {e.path.name for e in list_episodes(episodes_dir)}
    assert failure.summary["episode_id"] in kept and success.summary["episode_id"] not in kept


def run_and_label(client, label_client, outcome: str, record_mode: str):
    """Start a long Lift episode, label it after its first chunk; return (label answer, result)."""
    first_chunk = Future()
    goal = RunEpisode.Goal(task="Lift", seed=3, max_steps=300, record_mode=record_mode)
    handle = client.send_episode_goal(goal, lambda _: first_chunk.done() or first_chunk.set_result(True))
    client.spin_until(first_chunk, 120.0)
    assert first_chunk.done(), "no feedback from the episode"
    second = client.send_episode_goal(RunEpisode.Goal(task="Lift", seed=4, max_steps=8, record_mode="none"))
    assert second is not None and not second.accepted  # one episode at a time
    answer = label_client.label(outcome, timeout=30.0)
    return answer, client.wait_for_result(handle, 240.0)


def test_the_operators_label_ends_the_running_episode_with_that_outcome(graph):
    processes, client, episodes_dir = graph
    label_client = LabelClient(context=client.context)
    try:
        idle = label_client.label("failure", timeout=30.0)
        assert not idle.success and idle.message == "no episode is running"
        assert not label_client.label("maybe", timeout=30.0).success
        for outcome in ("failure", "success"):
            answer, result = run_and_label(client, label_client, outcome, "all")
            assert answer.success and answer.episode_id == result.summary["episode_id"], answer.message
            s = result.summary
            assert s["outcome"] == outcome and 0 < s["num_steps"] < 300, s  # ended early, by the label
            assert s["success_step"] == (answer.step if outcome == "success" else -1)
            assert read_episode_info(result.bag_path).outcome == outcome
    finally:
        label_client.destroy_node()
    processes.check()


def test_failures_mode_keeps_the_configured_share_of_successes(graph):
    processes, client, episodes_dir = graph
    label_client = LabelClient(context=client.context)
    parameters = AsyncParameterClient(client, "episode_manager")

    def set_share(value: float) -> None:
        future = parameters.set_parameters([Parameter("success_share", value=value)])
        client.spin_until(future, 30.0)
        assert future.done() and all(r.successful for r in future.result().results)

    try:
        set_share(0.5)
        results = [run_and_label(client, label_client, "success", "failures")[1] for _ in range(2)]
        assert [r.summary["outcome"] for r in results] == ["success", "success"]
        assert sorted(bool(r.bag_path) for r in results) == [False, True]  # one of two successes kept
    finally:
        set_share(0.0)
        label_client.destroy_node()


def test_unknown_task_ends_incomplete_with_the_reason_and_the_graph_survives(graph):
    processes, client, _ = graph
    result = client.run_episode("Stack", seed=0, record_mode="all", timeout=60)
    assert result.summary["outcome"] == "incomplete"
    assert "unknown task 'Stack'" in (processes.log_dir / "episode_manager.log").read_text()
    processes.check()


def test_dart_noise_perturbs_the_arm_and_the_dataset_keeps_the_experts_plan(graph):
    import numpy as np

    from wmpo_episodes.bag_conversion import read_episode_arrays

    processes, client, _ = graph
    parameters = AsyncParameterClient(client, "episode_manager")

    def set_noise(values: list[float]):
        future = parameters.set_parameters([Parameter("action_noise_std", value=values)])
        client.spin_until(future, 30.0)
        assert future.done()
        (result,) = future.result().results
        return result

    try:
        refused = set_noise([-0.1] + [0.0] * 6)  # refused at once, with the reason; nothing changes
        assert not refused.successful and "action_noise_std element 0 must be >= 0" in refused.reason
        assert set_noise([0.3, 0.3, 0.3, 0.0, 0.0, 0.15, 0.0]).successful
        # An evaluation-style goal (seed -1, an initial-state id) seeds the noise too.
        result = client.run_episode("Lift", init_state_id=1000, max_steps=24, record_mode="all", timeout=120)
    finally:
        set_noise([0.0] * 7)
    assert result.summary["num_steps"] == 24 and result.summary["num_chunks"] == 3
    topics = topic_messages(result.bag_path)
    planned = np.concatenate(
        [np.reshape(c.actions, (c.horizon, c.action_dim)) for c in topics["/policy_server/action_chunk"]]
    )
    sent = np.array([m.action for m in topics["/arm/commanded_action"]])
    # The arm got the plan plus noise on x, y, z and yaw only, within the action range.
    noise = sent - planned
    assert np.all(np.abs(noise[:, [0, 1, 2, 5]]).max(axis=0) > 0.05)
    np.testing.assert_array_equal(noise[:, [3, 4, 6]], 0.0)
    assert np.all(np.abs(sent) <= 1.0)
    # The dataset learns the plan, and keeps what the arm executed apart.
    arrays = read_episode_arrays(result.bag_path)
    np.testing.assert_allclose(arrays["commanded"], planned, atol=1e-6)
    np.testing.assert_allclose(arrays["actions"], [m.action for m in topics["/arm/executed_action"]], atol=1e-6)
    assert not np.allclose(arrays["actions"], arrays["commanded"], atol=0.05)
    processes.check()


def test_recorded_bags_convert_to_an_aligned_dataset_that_trains_and_resumes(graph, tmp_path):
    import numpy as np
    import torch

    from wmpo_episodes.bag_conversion import build_dataset
    from wmpo_episodes.dataset import EpisodeDataset
    from wmpo_policy.configs import BCConfig
    from wmpo_policy.train_bc import train

    processes, client, episodes_dir = graph
    records = build_dataset(episodes_dir, tmp_path / "data")
    kept = [e for e in list_episodes(episodes_dir) if e.outcome != "incomplete"]
    assert [r.episode_id for r in records] == [e.summary["episode_id"] for e in kept]
    data = EpisodeDataset(tmp_path / "data")
    for index, info in enumerate(kept):
        episode = data.episode(index)
        steps = info.summary["num_steps"]
        assert episode["frames"].shape == (steps + 1, 64, 64, 3) and episode["actions"].shape == (steps, 7)
        assert np.all(np.diff(episode["frame_stamps"]) > 0)  # one distinct frame per control step
        topics = topic_messages(info.path)
        np.testing.assert_allclose(episode["actions"][-1], topics["/arm/executed_action"][-1].action)
        last = topics["/camera/image_raw"][-1]
        assert episode["frame_stamps"][-1] == last.header.stamp.sec * 10**9 + last.header.stamp.nanosec

    small = {
        "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
        "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
        "projector_hidden_size": 64,
    }
    config = BCConfig(
        datasets=[str(tmp_path / "data")],
        output=str(tmp_path / "bc"),
        steps=20,
        batch_size=4,
        vision_tower="siglip",
        image_size=64,
        model_overrides=small,
        checkpoint_every=10,
        log_every=5,
        threads=1,
    )
    first = train(config)
    assert first.name == "step_20" and (first / "model.safetensors").is_file()
    state = torch.load(first / "trainer_state.pt", weights_only=True)
    assert state["step"] == 20
    config.steps = 30
    resumed = train(config)  # picks up at step 20 from the checkpoint
    assert resumed.name == "step_30"
    assert (tmp_path / "bc" / "tb").is_dir()


def test_wmpo_cli_lists_and_converts_the_bags_without_a_sourced_environment(graph, tmp_path):
    import os
    import subprocess
    import sys

    _, _, episodes_dir = graph
    env = {k: v for k, v in os.environ.items() if k != "AMENT_PREFIX_PATH"}
    cli = [sys.executable, "-m", "wmpo_bringup.cli"]
    listed = subprocess.run([*cli, "episodes", "list", str(episodes_dir)], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("success") >= 2 and "failure" in listed.stdout
    built = subprocess.run(
        [*cli, "dataset", str(episodes_dir), str(tmp_path / "data"), "--image-size", "32"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    assert "episodes" in built.stdout and (tmp_path / "data" / "frames.npy").is_file()


def test_imagine_graph_replays_a_recorded_episode_next_to_its_imagination(graph, tmp_path):
    """The imagine mode's graph as processes: the world-model node re-imagines a bag recorded by
    the sim graph under its own actions and publishes real and imagined frames side by side."""
    import rclpy
    from conftest import next_domain_id
    from graph_helpers import wait_for_services
    from sensor_msgs.msg import Image
    from test_world_model import tiny_pipeline

    from wmpo_bringup.environment import node_environment
    from wmpo_bringup.runner import GraphProcesses
    from wmpo_interfaces.srv import Imagine

    _, _, episodes_dir = graph
    bag = next(e.path for e in list_episodes(episodes_dir) if e.outcome == "failure")
    steps = read_episode_info(bag).summary["num_steps"]
    checkpoint = tiny_pipeline().save_atomically(tmp_path / "wm")
    domain = next_domain_id()
    overrides = {
        "camera": {"bag_path": str(bag)},
        "world_model": {
            "world_model": str(checkpoint),
            "sampler_steps": 2,
            "playback_rate": 100.0,
            "threads": 1,
            "data_root": str(episodes_dir),  # Imagine's bag paths must lie inside it
        },
    }
    env = node_environment(domain_id=domain, log_dir=str(tmp_path / "ros_logs"))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    received = {"imagined": [], "real": []}
    with GraphProcesses("imagine", tmp_path / "logs", overrides=overrides, env=env) as processes:
        node = rclpy.create_node("test_imagine", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for kind in received:
            node.create_subscription(Image, f"world_model/{kind}/image_raw", received[kind].append, 100)
        try:
            wait_for_services(node, processes, {"world_model/imagine": Imagine})
            client = node.create_client(Imagine, "world_model/imagine")
            future = client.call_async(Imagine.Request(bag_path=str(bag), seed=1))
            executor.spin_until_future_complete(future, timeout_sec=120)
            response = future.result()
            assert response.success, response.message
            assert response.num_frames == steps and not response.judged
            deadline = node.get_clock().now().nanoseconds + 60 * 10**9
            while min(len(v) for v in received.values()) < steps + 1 and node.get_clock().now().nanoseconds < deadline:
                executor.spin_once(timeout_sec=0.5)
            processes.check()
        finally:
            node.destroy_node()
            rclpy.try_shutdown(context=context)
    assert len(received["imagined"]) == len(received["real"]) == steps + 1
    assert [m.header.stamp for m in received["imagined"]] == [m.header.stamp for m in received["real"]]
    assert received["imagined"][0].width == 16 and received["real"][0].width == 16  # the model's size
