"""A node killed mid-episode: earlier bags stay intact, the current one is readable and labelled
incomplete, and the rest of the graph keeps going."""

import signal
import time
from pathlib import Path

import pytest
from graph_helpers import running_sim_graph
from rcl_interfaces.msg import Log
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosbags.highlevel import AnyReader
from std_msgs.msg import String

from wmpo_bringup.runner import GraphProcesses
from wmpo_episodes.episodes import list_episodes, read_episode_info
from wmpo_episodes.layout import INCOMING_DIR
from wmpo_episodes.recovery import mcap_messages
from wmpo_episodes.typestore import episode_typestore
from wmpo_interfaces.action import RunEpisode

pytestmark = pytest.mark.graph
FAST_TIMEOUTS = {"episode_manager": {"service_wait": 3.0, "arm_timeout": 10.0}}


def snapshot(bag: Path) -> dict:
    return {p.name: p.read_bytes() for p in bag.iterdir()}


def start_episode_and_wait_until_step(client, seed: int, step: int):
    """Send a RunEpisode goal and spin until its feedback reports ``step`` steps."""
    progress = []
    goal = RunEpisode.Goal(task="Lift", seed=seed, init_state_id=-1, max_steps=0, record_mode="all")
    handle = client.send_episode_goal(goal, feedback=lambda f: progress.append(f.feedback.step))
    deadline = time.monotonic() + 60
    while (not progress or progress[-1] < step) and time.monotonic() < deadline:
        client.spinner.spin_once(timeout_sec=0.05)
    assert progress and progress[-1] >= step
    return handle


def wait_for_flushed_bytes(incoming: Path, size: int, client, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(f.stat().st_size for f in incoming.glob("*/*.mcap")) > size:
            return True
        client.spinner.spin_once(timeout_sec=0.05)
    return False


def count_messages(bag: Path, topic: str) -> int:
    with AnyReader([bag], default_typestore=episode_typestore()) as reader:
        return sum(1 for c, _, _ in reader.messages() if c.topic == topic)


def test_recorder_killed_mid_episode_recovers_the_episode_as_incomplete(tmp_path, ros_domain):
    with running_sim_graph(tmp_path, ros_domain, FAST_TIMEOUTS) as (processes, client, episodes):
        first = client.run_episode("Lift", seed=0, record_mode="all", timeout=240)
        assert first.summary["outcome"] == "success"
        before = snapshot(Path(first.bag_path))
        handle = start_episode_and_wait_until_step(client, seed=1, step=24)
        # Wait until the recorder has flushed images of this episode to disk (one flush period).
        flushed = wait_for_flushed_bytes(episodes / INCOMING_DIR, 50_000, client)
        assert flushed, "the recorder flushed nothing within 30 s"
        (staged_file,) = (episodes / INCOMING_DIR).glob("*/*.mcap")
        on_disk = [m for m in mcap_messages(staged_file) if m[0] == "/camera/image_raw"]
        processes.processes["recorder"].send_signal(signal.SIGKILL)
        second = client.wait_for_result(handle, timeout=120)
        assert second.bag_path == ""  # the recorder was gone when the episode ended
        staging = list((episodes / INCOMING_DIR).iterdir())
        assert len(staging) == 1
        # A new recorder recovers what the killed one left.
        env = processes.env
        restarted = GraphProcesses(
            "sim",
            tmp_path / "logs_restart",
            overrides={"recorder": {"output_dir": str(episodes)}},
            env=env,
            only=("recorder",),
        ).start()
        recovered = []
        qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        client.create_subscription(String, "recorder/recovered", lambda m: recovered.append(m.data), qos)
        try:
            deadline = time.monotonic() + 90
            while not recovered and time.monotonic() < deadline:  # the new recorder's announcement
                restarted.check()
                client.spinner.spin_once(timeout_sec=0.1)
            assert recovered, "the restarted recorder announced no recovered episode"
        finally:
            restarted.stop()
    assert snapshot(Path(first.bag_path)) == before
    assert recovered == [str(episodes / second.summary["episode_id"])]
    assert not any((episodes / INCOMING_DIR).iterdir())
    info = read_episode_info(Path(recovered[0]))
    assert info.outcome == "incomplete"
    assert count_messages(Path(recovered[0]), "/camera/image_raw") >= len(on_disk) > 0  # all that was flushed
    assert [e.outcome for e in list_episodes(episodes)] == ["success", "incomplete"]


def test_simulator_killed_mid_episode_ends_it_incomplete_with_a_readable_bag(tmp_path, ros_domain):
    with running_sim_graph(tmp_path, ros_domain, FAST_TIMEOUTS) as (processes, client, episodes):
        first = client.run_episode("Lift", seed=0, record_mode="all", timeout=240)
        before = snapshot(Path(first.bag_path))
        handle = start_episode_and_wait_until_step(client, seed=1, step=16)
        processes.processes["camera+arm"].send_signal(signal.SIGKILL)
        second = client.wait_for_result(handle, timeout=120)
        assert second.summary["outcome"] == "incomplete"
        bag = Path(second.bag_path)
        assert read_episode_info(bag).outcome == "incomplete"
        assert count_messages(bag, "/arm/executed_action") >= 16
        assert processes.processes["recorder"].poll() is None  # the rest of the graph is alive
        assert processes.processes["episode_manager"].poll() is None
    assert snapshot(Path(first.bag_path)) == before


def wait_for_log(client, logs: list, text: str, timeout: float = 60.0) -> bool:
    """Spin until a /rosout message containing ``text`` has arrived (graph state, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not any(text in log for log in logs) and time.monotonic() < deadline:
        client.spinner.spin_once(timeout_sec=0.05)
    return any(text in log for log in logs)


def test_a_recorder_that_answers_late_neither_loses_the_episode_nor_blocks_the_next(tmp_path, ros_domain):
    """A recorder that answers recorder/start after the manager's service_wait (seen on loaded CI
    machines: 10-15 s for the first episode of a fresh graph): the manager asks again, so a late
    answer still starts the episode; and when every request went unanswered, the bag the recorder
    opens later does not block the next episode."""
    logs = []
    overrides = {"episode_manager": {"service_wait": 5.0}}  # a resumed recorder first works off its queues
    with running_sim_graph(tmp_path, ros_domain, overrides) as (processes, client, episodes):
        client.create_subscription(Log, "/rosout", lambda m: logs.append(f"[{m.name}] {m.msg}"), 100)
        recorder = processes.processes["recorder"]
        # One episode first: the manager has discovered the recorder before the recorder is frozen.
        first = client.run_episode("Lift", init_state_id=1000, max_steps=8, record_mode="all", timeout=120)
        # No answer to any request: the episode ends incomplete; the recorder then opens its bag.
        recorder.send_signal(signal.SIGSTOP)
        try:
            unanswered = client.run_episode("Lift", init_state_id=1000, max_steps=8, record_mode="all", timeout=120)
        finally:
            recorder.send_signal(signal.SIGCONT)
        assert unanswered.summary["outcome"] == "incomplete" and unanswered.summary["num_steps"] == 0
        after = client.run_episode("Lift", init_state_id=1000, max_steps=8, record_mode="all", timeout=120)
        assert after.summary["outcome"] == "failure" and after.summary["num_steps"] == 8
        assert wait_for_log(client, logs, f"episode {unanswered.summary['episode_id']} incomplete: dropped")
        # A late answer: the recorder resumes while the manager is asking again.
        logs.clear()
        recorder.send_signal(signal.SIGSTOP)
        try:
            handle = client.send_episode_goal(
                RunEpisode.Goal(task="Lift", seed=-1, init_state_id=1001, max_steps=8, record_mode="all")
            )
            assert wait_for_log(client, logs, "recorder/start: no answer within 5 s; asking again")
        finally:
            recorder.send_signal(signal.SIGCONT)
        late = client.wait_for_result(handle, timeout=120)
        processes.check()
    assert late.summary["outcome"] == "failure" and late.summary["num_steps"] == 8
    kept = {e.path.name: e.outcome for e in list_episodes(episodes)}
    assert kept == {r.summary["episode_id"]: "failure" for r in (first, after, late)}
    assert not any((episodes / INCOMING_DIR).iterdir())
    assert any(late.summary["episode_id"] in log and "asking again (2/3)" in log for log in logs)
