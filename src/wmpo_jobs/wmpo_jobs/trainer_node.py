"""Trainer node: runs the WMPO loop as a ROS action, collecting real episodes through the graph
that runs beside it (the sim graph, or the robot), and deploying each improved policy to it.

Interfaces (node ``trainer``):
  action ~/train   wmpo_interfaces/TrainWMPO  (feedback: round, phase, success rate; cancel between phases)
  uses   episode_manager/run_episode, policy_server parameters (checkpoint, temperature)

One goal at a time. A goal re-sent with the same output folder resumes where the last one stopped.
The goal's paths (policy, world_model, demos, output) must lie inside ``data_root`` (symlinks and
``..`` resolved); a goal with another path is aborted with the reason and nothing is written.
"""

import traceback
from pathlib import Path

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from wmpo_common.confined_paths import PathOutsideRoots, confined_path
from wmpo_common.ros.action_goals import OneGoalAtATime
from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, at_least, declare_parameters, in_range, positive
from wmpo_interfaces.action import TrainWMPO
from wmpo_jobs.configs import LoopConfig
from wmpo_trainer.configs import GRPOConfig

# The loop's settings as run-time parameters; their defaults are the configs' (LoopConfig, GRPOConfig).
PARAMETERS = {
    "align_steps": Parameter(LoopConfig.align_steps, "world-model alignment steps per round", positive),
    "reward_steps": Parameter(LoopConfig.reward_steps, "reward-model training steps per round", positive),
    "wmpo_iterations": Parameter(LoopConfig.wmpo_iterations, "GRPO iterations in imagination per round", positive),
    "group_size": Parameter(GRPOConfig.group_size, "imagined rollouts per start state (GRPO needs >= 2)", at_least(2)),
    "start_states": Parameter(GRPOConfig.start_states, "groups per GRPO iteration", positive),
    "sampler_steps": Parameter(LoopConfig.sampler_steps, "denoising steps per imagined chunk", positive),
    "real_context_fraction": Parameter(
        LoopConfig.real_context_fraction, "share of imagined rollouts started from a real keyframe", in_range(0.0, 1.0)
    ),
    "gap_bound": Parameter(LoopConfig.gap_bound, "|imagined - real| success beyond which the round warns", positive),
    "drift_limit": Parameter(
        LoopConfig.drift_limit, "share of greedy tokens a new policy may change and still deploy", in_range(0.0, 1.0)
    ),
    "max_success_drop": Parameter(
        LoopConfig.max_success_drop,
        "how far a new policy's held-out greedy success may fall below the deployed one's and still deploy",
        in_range(0.0, 1.0),
    ),
    "threads": Parameter(LoopConfig.threads, "torch CPU threads", positive),
    "data_root": Parameter("runs", "folder every goal path must lie in (resolved at start-up)", read_only=True),
}
GOAL_PATHS = ("policy", "world_model", "demos", "output")


class TrainerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("trainer", **kwargs)
        declare_parameters(self, PARAMETERS)
        self.data_root = Path(self.param("data_root")).resolve()
        self.one_goal = OneGoalAtATime()
        self.group = ReentrantCallbackGroup()
        ActionServer(
            self,
            TrainWMPO,
            "~/train",
            execute_callback=self._train,
            goal_callback=self._accept,
            handle_accepted_callback=self.one_goal.claim,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=self.group,
        )

    def param(self, key: str):
        return self.get_parameter(key).value

    def _accept(self, goal) -> GoalResponse:
        if not (goal.task and goal.policy and goal.world_model and goal.demos and goal.output):
            self.get_logger().error(
                "rejected a TrainWMPO goal: task, policy, world_model, demos and output are required"
            )
            return GoalResponse.REJECT
        if self.one_goal.busy:
            self.get_logger().error("rejected a TrainWMPO goal: training is already running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _train(self, goal_handle):
        from wmpo_jobs.graph_collector import GraphCollector
        from wmpo_jobs.loop import run_loop

        result = TrainWMPO.Result()
        if not self.one_goal.owns(goal_handle):  # accepted beside another goal; that one runs
            result.message = "training is already running"
            self.get_logger().error(f"aborted a TrainWMPO goal: {result.message}")
            goal_handle.abort()
            return result
        goal = goal_handle.request
        try:
            paths = {key: str(confined_path(getattr(goal, key), [self.data_root], key)) for key in GOAL_PATHS}
            config = LoopConfig(
                task=goal.task,
                **paths,
                rounds=goal.rounds or 1,
                budget=goal.budget or LoopConfig.budget,
                max_steps=goal.max_steps,
                eval_init_states=goal.eval_init_states or LoopConfig.eval_init_states,
                align_steps=self.param("align_steps"),
                reward_steps=self.param("reward_steps"),
                wmpo_iterations=self.param("wmpo_iterations"),
                grpo=GRPOConfig(group_size=self.param("group_size"), start_states=self.param("start_states")),
                sampler_steps=self.param("sampler_steps"),
                real_context_fraction=self.param("real_context_fraction"),
                gap_bound=self.param("gap_bound"),
                drift_limit=self.param("drift_limit"),
                max_success_drop=self.param("max_success_drop"),
                threads=self.param("threads"),
            )

            def on_phase(round_index: int, phase: str, outcome: dict) -> None:
                rates = ("success_rate", "imagined_success_rate", "imagined_rate")
                rate = next((outcome[key] for key in rates if key in outcome), -1.0)
                feedback = TrainWMPO.Feedback(round=round_index, phase=phase, success_rate=float(rate))
                feedback.message = f"round {round_index}: {phase} done" + (
                    f": {outcome['message']}" if "message" in outcome else ""
                )
                goal_handle.publish_feedback(feedback)
                if outcome.get("exceeded"):  # the imagination gap beyond its bound: loud
                    self.get_logger().warning(feedback.message)
                else:
                    self.get_logger().info(feedback.message)

            stop = lambda: goal_handle.is_cancel_requested  # noqa: E731
            summary = run_loop(config, GraphCollector(self, should_stop=stop), on_phase, should_stop=stop)
            result.base_success_rate = summary["base_success_rate"]
            if summary["rounds"]:
                result.final_success_rate = summary["rounds"][-1]["eval_success_rate"]
                result.policy = summary["rounds"][-1]["policy"]
            result.summary_path = f"{paths['output']}/summary.json"
            if goal_handle.is_cancel_requested:
                result.message = "canceled; re-send the goal with the same output to resume"
                goal_handle.canceled()
            else:
                result.success, result.message = True, f"{len(summary['rounds'])} round(s) done"
                goal_handle.succeed()
        except PathOutsideRoots as error:
            result.message = f"refused: {error} (parameter data_root)"
            self.get_logger().error(result.message)
            goal_handle.abort()
        except Exception as error:  # noqa: BLE001  any failure ends the goal with the reason, the node lives on
            if goal_handle.is_cancel_requested:
                result.message = "canceled; re-send the goal with the same output to resume"
                goal_handle.canceled()
            else:
                result.message = f"training failed: {error}"
                self.get_logger().error(f"{result.message}\n{traceback.format_exc()}")
                goal_handle.abort()
        finally:
            self.one_goal.release()
        return result


def main(args=None):
    spin_node(TrainerNode, "trainer", args, num_threads=4)


if __name__ == "__main__":
    main()
