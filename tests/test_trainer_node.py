"""The trainer node runs the WMPO loop as a ROS action beside the sim graph: feedback, result,
deployment to the policy server, and cancel."""

import pytest
from action_msgs.msg import GoalStatus
from graph_helpers import running_sim_graph
from rclpy.action import ActionClient
from test_reward_model import toy_episode
from test_vla_model import small_policy
from test_world_model import tiny_pipeline

from wmpo_bringup.environment import node_environment
from wmpo_bringup.runner import GraphProcesses
from wmpo_common.ros.action_goals import send_goal
from wmpo_episodes.dataset import write_dataset
from wmpo_interfaces.action import TrainWMPO
from wmpo_jobs.loop import PHASES

pytestmark = pytest.mark.graph
TINY = {
    "align_steps": 2,
    "reward_steps": 4,
    "wmpo_iterations": 1,
    "group_size": 2,
    "start_states": 2,
    "sampler_steps": 2,
    "threads": 1,
}


def log_tail(log, lines: int = 30) -> str:
    return "".join(log.read_text().splitlines(keepends=True)[-lines:]) if log.exists() else f"{log}: no log"


def test_trainer_action_runs_a_round_with_feedback_and_cancels(tmp_path, ros_domain):
    policy = small_policy().save_pretrained(tmp_path / "policy")
    world_model = tiny_pipeline().save_atomically(tmp_path / "wm")
    write_dataset(tmp_path / "demos", [toy_episode(i, success=True, steps=12) for i in range(4)])
    goal = TrainWMPO.Goal(
        task="Lift",
        policy=str(policy),
        world_model=str(world_model),
        demos=str(tmp_path / "demos"),
        output=str(tmp_path / "run"),
        rounds=1,
        budget=2,
        max_steps=8,
        eval_init_states="1000:1002",
    )
    env = node_environment(domain_id=ros_domain, log_dir=str(tmp_path / "trainer_logs"))
    with (
        running_sim_graph(tmp_path, ros_domain) as (processes, client, _),
        GraphProcesses(
            "imagine",
            tmp_path / "trainer",
            overrides={"trainer": {**TINY, "data_root": str(tmp_path)}},
            env=env,
            only=("trainer",),
        ) as trainer,
    ):
        action = ActionClient(client, TrainWMPO, "trainer/train")
        assert action.wait_for_server(timeout_sec=60)
        phases = []
        handle = send_goal(action, goal, client.spin_until, lambda f: phases.append(f.feedback.phase))
        assert handle is not None and handle.accepted, log_tail(tmp_path / "trainer" / "trainer.log")
        outcome = handle.get_result_async()
        client.spin_until(outcome, 600)
        result = outcome.result().result
        assert result.success, result.message
        assert phases == ["base_evaluate", *PHASES]
        assert result.policy.endswith("iter_1") and 0.0 <= result.final_success_rate <= 1.0
        # The deployed policy serves the next episode.
        episode = client.run_episode("Lift", init_state_id=1000, max_steps=8, record_mode="none", timeout=120)
        assert episode.summary["policy_id"].endswith("iter_1")

        # Cancel: stops at the next phase boundary, and says how to resume.
        goal.output = str(tmp_path / "canceled")
        handle = send_goal(action, goal, client.spin_until, lambda f: phases.append(f.feedback.phase))
        assert handle is not None and handle.accepted, log_tail(tmp_path / "trainer" / "trainer.log")
        client.spin_until(handle.cancel_goal_async(), 30)
        outcome = handle.get_result_async()
        client.spin_until(outcome, 600)
        assert outcome.result().status == GoalStatus.STATUS_CANCELED
        assert "resume" in outcome.result().result.message
        processes.check()
        trainer.check()
