"""Episode manager: runs one episode per RunEpisode goal and has it recorded and labelled.

Interfaces (node ``episode_manager``):
  action  ~/run_episode  wmpo_interfaces/RunEpisode   (feedback: step, chunk index, budget)
  service ~/label        wmpo_interfaces/LabelEpisode the operator's success / failure (``wmpo label``)
  pub    instruction    std_msgs/String (transient local; the policy server reads it)
  uses   recorder/start, recorder/stop, arm/reset, policy_server/get_action_chunk, arm/execute_chunk

One episode: start the bag -> reset the arm -> until success or the step budget: ask the policy
for a chunk from an image taken after the last step, execute it open loop -> label the bag
success / failure (incomplete if anything broke or the goal was canceled) -> keep it or drop it by
record mode (all | failures | none; ``failures`` keeps a ``success_share`` of the successes too).
An episode whose recording failed (recorder/stop answers failure, or not at all) ends incomplete,
whatever the arm said: its goal is aborted and the result carries the bag the recorder kept.
recorder/start is asked again when it goes unanswered (a recorder that has just started may answer
late); an episode given up for want of an answer has the bag the recorder opens later dropped.

Demonstrations with recoveries (DART, Laskey et al. 2017): with ``action_noise_std`` set, every
chunk is perturbed by Gaussian noise (per action dimension, controller units, clipped to [-1, 1])
between the policy and the arm, seeded by the episode's seed and initial-state id. The policy's
chunk stays on policy_server/action_chunk, so behaviour cloning learns the expert's correction
from states off its nominal path (the dataset's ``commanded`` actions).

Labels: the simulated arm reports success itself. A physical arm cannot: the operator labels the
running episode through ~/label, which ends it at once with that outcome. When the budget runs out
and neither the arm nor the operator has said success, the manager waits ``label_timeout`` seconds
for the operator's verdict; without one the episode ends incomplete (0 = no waiting: failure).

rosbag2 snapshots (ROS machines): with ``snapshot_service`` set (``/rosbag2_recorder/snapshot``
of ``ros2 bag record --snapshot-mode``, which the launch file's ``rosbag2_snapshot:=true``
starts), every episode that did not succeed also has rosbag2 write its in-memory buffer.
"""

import traceback
import uuid
from datetime import UTC, datetime

import numpy as np
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.task import Future
from std_msgs.msg import String

from wmpo_common.actions import ACTION_DIM
from wmpo_common.ros.action_goals import OneGoalAtATime
from wmpo_common.ros.deadlines import Deadlines
from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import (
    Parameter,
    at_least,
    declare_parameters,
    in_range,
    non_negative,
    one_of,
    positive,
    vector,
)
from wmpo_episodes.layout import MIN_SERVICE_WAIT
from wmpo_episodes.rosbag2_snapshot import snapshot_service_type
from wmpo_interfaces.action import ExecuteChunk, RunEpisode
from wmpo_interfaces.msg import EpisodeSummary
from wmpo_interfaces.srv import GetActionChunk, LabelEpisode, ResetEpisode, StartRecording, StopRecording

RECORD_MODES = (RunEpisode.Goal.RECORD_ALL, RunEpisode.Goal.RECORD_FAILURES, RunEpisode.Goal.RECORD_NONE)
PARAMETERS = {  # every one run-time (read at each use) except snapshot_service
    "record_mode": Parameter("all", "default record mode: all | failures | none", one_of(*RECORD_MODES)),
    "policy_timeout": Parameter(10.0, "seconds to wait for the policy's chunk", positive),
    "arm_timeout": Parameter(30.0, "seconds to wait for the arm to execute a chunk", positive),
    "reset_timeout": Parameter(
        120.0, "seconds to wait for a reset (the first one builds the simulated scene)", positive
    ),
    "execute_steps": Parameter(
        0, "actions executed per chunk before asking again (0 = the whole chunk, open loop)", at_least(0)
    ),
    "service_wait": Parameter(
        10.0,
        f"seconds to wait for the other nodes' services and the recorder's answers (at least {MIN_SERVICE_WAIT}: "
        "the recorder's stop may wait drain_timeout first)",
        at_least(MIN_SERVICE_WAIT),
    ),
    "label_timeout": Parameter(
        0.0, "seconds to wait for the operator's label when the arm cannot tell success (0 = none)", non_negative
    ),
    "success_share": Parameter(
        0.0, "record mode failures: share of successful episodes kept as well (0..1)", in_range(0.0, 1.0)
    ),
    "action_noise_std": Parameter(
        [0.0] * ACTION_DIM,
        "std of the Gaussian noise added to each action, per dimension (DART)",
        vector(ACTION_DIM, non_negative),
    ),
    "snapshot_service": Parameter(
        "", "rosbag2 Snapshot service called after every unsuccessful episode ('' = none)", read_only=True
    ),
}


START_REQUESTS = 3  # recorder/start is sent this many times, service_wait apart, before the episode is given up


class EpisodeError(RuntimeError):
    """The episode cannot go on; it ends incomplete."""


def keep_episode(mode: str, outcome: str, successes_before: int, success_share: float) -> bool:
    """Whether a finished episode's bag is kept. In ``failures`` mode every non-success is kept and
    successes are thinned deterministically to ``success_share`` of them (the n-th success, counting
    from 0, is kept when floor((n + 1) * share) > floor(n * share): 0.25 keeps the 4th, 8th, ...)."""
    if mode == RunEpisode.Goal.RECORD_ALL or outcome != EpisodeSummary.OUTCOME_SUCCESS:
        return True
    return int((successes_before + 1) * success_share) > int(successes_before * success_share)


def new_episode_id(task: str, seed: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}_{task}_s{seed}_{uuid.uuid4().hex[:6]}"


class EpisodeManager(Node):
    def __init__(self, **kwargs):
        super().__init__("episode_manager", **kwargs)
        declare_parameters(self, PARAMETERS)
        group = ReentrantCallbackGroup()
        self.deadlines = Deadlines(self)
        self.instruction_pub = self.create_publisher(
            String, "instruction", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        self.reset_client = self.create_client(ResetEpisode, "arm/reset", callback_group=group)
        self.chunk_client = self.create_client(GetActionChunk, "policy_server/get_action_chunk", callback_group=group)
        self.start_client = self.create_client(StartRecording, "recorder/start", callback_group=group)
        self.stop_client = self.create_client(StopRecording, "recorder/stop", callback_group=group)
        self.execute_client = ActionClient(self, ExecuteChunk, "arm/execute_chunk", callback_group=group)
        self.snapshot_client = None
        if self.param("snapshot_service"):
            try:
                snapshot = snapshot_service_type()
            except ImportError as error:
                raise ValueError(str(error)) from None
            self.snapshot_client = self.create_client(snapshot, self.param("snapshot_service"), callback_group=group)
        self.one_goal = OneGoalAtATime()
        self._running: EpisodeSummary | None = None  # the episode now running, for ~/label
        self._label = Future()  # completed by ~/label with (outcome, step)
        self._successes_recorded = 0  # successes seen in failures mode (for success_share)
        self._abandoned: dict[str, EpisodeSummary] = {}  # episodes given up for want of a start answer, by id
        self.create_service(LabelEpisode, "~/label", self._on_label, callback_group=group)
        ActionServer(
            self,
            RunEpisode,
            "~/run_episode",
            execute_callback=self._run,
            goal_callback=self._accept_goal,
            handle_accepted_callback=self.one_goal.claim,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=group,
        )

    def param(self, key: str):
        return self.get_parameter(key).value

    def _accept_goal(self, goal):
        if self.one_goal.busy:
            self.get_logger().error("rejected a RunEpisode goal: an episode is already running")
            return GoalResponse.REJECT
        mode = goal.record_mode or self.param("record_mode")
        if mode not in RECORD_MODES:
            self.get_logger().error(f"rejected a RunEpisode goal: record_mode {mode!r} not in {RECORD_MODES}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_label(self, request, response):
        episode = self._running
        if request.outcome not in (LabelEpisode.Request.OUTCOME_SUCCESS, LabelEpisode.Request.OUTCOME_FAILURE):
            response.message = f"unknown outcome {request.outcome!r}; use success or failure"
        elif episode is None:
            response.message = "no episode is running"
        elif self._label.done():
            response.message = f"episode {episode.episode_id} is already labelled or past its label time"
        else:
            self._label.set_result((request.outcome, episode.num_steps))
            response.success = True
            response.message = f"episode {episode.episode_id} labelled {request.outcome} at step {episode.num_steps}"
            self.get_logger().info(f"operator: {response.message}")
        if not response.success:
            self.get_logger().warning(f"label refused: {response.message}")
        if episode is not None:
            response.episode_id, response.step = episode.episode_id, episode.num_steps
        return response

    async def _await(self, future, timeout: float, what: str):
        """Await an rclpy future; raise EpisodeError if it is not done within ``timeout`` s."""
        await self.deadlines.watch(future, timeout)
        if future.cancelled():
            raise EpisodeError(f"{what}: no answer within {timeout:.0f} s")
        return future.result()

    async def _call(self, client, request, timeout: float, what: str):
        return await self._await(client.call_async(request), timeout, what)

    def _wait_for_services(self) -> None:
        wait = self.param("service_wait")
        for client, name in (
            (self.reset_client, "arm/reset"),
            (self.chunk_client, "policy_server/get_action_chunk"),
            (self.start_client, "recorder/start"),
            (self.stop_client, "recorder/stop"),
        ):
            if not client.wait_for_service(timeout_sec=wait):
                raise EpisodeError(f"service {name} not available after {wait:.0f} s")
        if not self.execute_client.wait_for_server(timeout_sec=wait):
            raise EpisodeError(f"action arm/execute_chunk not available after {wait:.0f} s")

    async def _execute_chunk(self, chunk, goal_handle, summary):
        timeout = self.param("arm_timeout")
        arm_goal = await self._await(
            self.execute_client.send_goal_async(ExecuteChunk.Goal(chunk=chunk)), timeout, "arm/execute_chunk"
        )
        if not arm_goal.accepted:
            raise EpisodeError("the arm rejected the chunk")
        if goal_handle.is_cancel_requested:
            arm_goal.cancel_goal_async()
        wrapped = await self._await(arm_goal.get_result_async(), timeout, "arm/execute_chunk result")
        result = wrapped.result
        summary.safety_interventions = result.safety_interventions
        if wrapped.status == GoalStatus.STATUS_ABORTED:
            raise EpisodeError(f"the arm stopped: {result.message}")
        return wrapped.status, result

    def _perturbed(self, chunk, rng: np.random.Generator) -> list[float]:
        """The chunk's actions plus ``action_noise_std`` noise, clipped to [-1, 1] (unchanged without noise)."""
        std = np.asarray(self.param("action_noise_std"), dtype=float)  # checked: finite, >= 0
        if not std.any():
            return list(chunk.actions)
        if len(std) != chunk.action_dim:
            raise EpisodeError(f"action_noise_std has {len(std)} values for {chunk.action_dim} action dimensions")
        actions = np.asarray(chunk.actions, dtype=float).reshape(chunk.horizon, chunk.action_dim)
        return np.clip(actions + rng.normal(0.0, std, actions.shape), -1.0, 1.0).reshape(-1).tolist()

    async def _operator_outcome(self, summary, success_known: bool, outcome: str) -> str:
        """The outcome once the arm has not reported success: the operator's label if one came (a
        success ends at the step it was given), else wait ``label_timeout`` s for it where the arm
        cannot tell success; no label then means incomplete."""
        wait = self.param("label_timeout")
        if not self._label.done() and not success_known and wait > 0:
            self.get_logger().warning(
                f"episode {summary.episode_id}: budget spent; waiting {wait:.0f} s for the operator's label "
                "(wmpo label success | failure)"
            )
            await self.deadlines.watch(self._label, wait)
            if self._label.cancelled():
                raise EpisodeError(f"no operator label within {wait:.0f} s")
        if not self._label.done():
            return outcome
        label, step = self._label.result()
        if label == LabelEpisode.Request.OUTCOME_SUCCESS:
            summary.success_step = step
            return EpisodeSummary.OUTCOME_SUCCESS
        return EpisodeSummary.OUTCOME_FAILURE

    async def _take_snapshot(self, summary) -> None:
        """Have rosbag2 write its buffer (the lead-up to this unsuccessful episode); errors are logged."""
        name = self.param("snapshot_service")
        try:
            if not self.snapshot_client.service_is_ready():
                raise EpisodeError(f"{name} is not available (is `ros2 bag record --snapshot-mode` running?)")
            request = self.snapshot_client.srv_type.Request()
            answer = await self._call(self.snapshot_client, request, self.param("service_wait"), name)
            if not answer.success:
                raise EpisodeError(f"{name} answered failure")
            self.get_logger().info(f"episode {summary.episode_id}: rosbag2 snapshot written")
        except EpisodeError as error:
            self.get_logger().error(f"episode {summary.episode_id}: no rosbag2 snapshot: {error}")

    async def _start_recording(self, summary) -> None:
        """Have the recorder open the episode's bag, or raise EpisodeError.

        A request without an answer within ``service_wait`` is sent again, START_REQUESTS in all (a
        recorder that has not yet discovered this node gets them late; a start for the episode it
        records already succeeds). When none is answered, a bag the recorder opens later for that
        episode is stopped and dropped when it refuses a later episode's start."""
        wait = self.param("service_wait")
        request = StartRecording.Request(summary=summary)
        for sent in range(1, START_REQUESTS + 1):
            try:
                started = await self._call(self.start_client, request, wait, "recorder/start")
            except EpisodeError as error:
                if sent == START_REQUESTS:
                    self._abandoned[summary.episode_id] = summary
                    raise EpisodeError(f"{error} ({sent} requests)") from None
                self.get_logger().warning(
                    f"episode {summary.episode_id}: {error}; asking again ({sent + 1}/{START_REQUESTS})"
                )
                continue
            abandoned = None if started.success else self._abandoned.pop(started.recording_episode_id, None)
            if abandoned is not None:
                self.get_logger().warning(
                    f"the recorder opened episode {abandoned.episode_id} after it was given up; dropping that bag"
                )
                abandoned.end_time = self.get_clock().now().to_msg()
                await self._call(
                    self.stop_client, StopRecording.Request(summary=abandoned, keep=False), wait, "recorder/stop"
                )
                started = await self._call(self.start_client, request, wait, "recorder/start")
            if not started.success:
                raise EpisodeError(f"recorder refused to start: {started.message}")
            return

    async def _stop_recording(self, summary, mode: str) -> str:
        """Close the episode's bag and return its path; a failed recording makes the episode incomplete."""
        keep = keep_episode(mode, summary.outcome, self._successes_recorded, self.param("success_share"))
        request = StopRecording.Request(summary=summary, keep=keep)
        try:
            stopped = await self._call(self.stop_client, request, self.param("service_wait"), "recorder/stop")
        except EpisodeError as error:
            stopped = StopRecording.Response(success=False, message=str(error))
        if not stopped.success:
            summary.outcome = EpisodeSummary.OUTCOME_INCOMPLETE
            self.get_logger().error(f"episode {summary.episode_id} incomplete: its recording failed: {stopped.message}")
        self._successes_recorded += summary.outcome == EpisodeSummary.OUTCOME_SUCCESS
        return stopped.bag_path

    async def _run(self, goal_handle):
        if not self.one_goal.owns(goal_handle):  # accepted beside another goal; that one runs
            self.get_logger().error("aborted a RunEpisode goal: an episode is already running")
            goal_handle.abort()
            return RunEpisode.Result()
        goal = goal_handle.request
        mode = goal.record_mode or self.param("record_mode")
        summary = EpisodeSummary(
            episode_id=new_episode_id(goal.task, goal.seed),
            task=goal.task,
            instruction=goal.instruction,
            seed=goal.seed,
            init_state_id=goal.init_state_id,
            outcome=EpisodeSummary.OUTCOME_INCOMPLETE,
            success_step=-1,
            start_time=self.get_clock().now().to_msg(),
        )
        recording = False
        result = RunEpisode.Result()
        self._label = Future()
        self._running = summary
        try:
            self._wait_for_services()
            if mode != RunEpisode.Goal.RECORD_NONE:
                await self._start_recording(summary)
                recording = True
            reset = await self._call(
                self.reset_client,
                ResetEpisode.Request(task=goal.task, seed=goal.seed, init_state_id=goal.init_state_id),
                self.param("reset_timeout"),
                "arm/reset",
            )
            if not reset.success:
                raise EpisodeError(f"reset failed: {reset.message}")
            summary.instruction = goal.instruction or reset.instruction
            summary.max_steps = goal.max_steps or reset.default_max_steps
            if summary.max_steps == 0:
                raise EpisodeError("no step budget: set max_steps (the arm does not know the task's)")
            self.instruction_pub.publish(String(data=summary.instruction))
            not_before = reset.stamp
            feedback = RunEpisode.Feedback(max_steps=summary.max_steps)
            noise = np.random.default_rng([goal.seed % 2**32, goal.init_state_id % 2**32])  # ids may be -1
            outcome = EpisodeSummary.OUTCOME_FAILURE
            success_known = False
            while summary.num_steps < summary.max_steps and not self._label.done():
                if goal_handle.is_cancel_requested:
                    raise EpisodeError("canceled")
                answer = await self._call(
                    self.chunk_client,
                    GetActionChunk.Request(  # the episode and its instruction: the server never races the topic
                        not_before=not_before,
                        timeout=float(self.param("policy_timeout")),
                        step=summary.num_steps,
                        episode_id=summary.episode_id,
                        instruction=summary.instruction,
                        sampling_seed=goal.sampling_seed,
                    ),
                    self.param("policy_timeout") + 5.0,
                    "policy_server/get_action_chunk",
                )
                if not answer.success:
                    raise EpisodeError(f"policy failed: {answer.message}")
                chunk = answer.chunk
                summary.policy_id = chunk.policy_id
                steps = min(summary.max_steps - summary.num_steps, self.param("execute_steps") or chunk.horizon)
                if chunk.horizon > steps:  # execute only the head (the budget ends, or closed-loop execution)
                    chunk.actions = chunk.actions[: steps * chunk.action_dim]
                    chunk.horizon = steps
                chunk.actions = self._perturbed(chunk, noise)
                status, executed = await self._execute_chunk(chunk, goal_handle, summary)
                summary.num_steps += executed.steps_executed
                summary.num_chunks += 1
                not_before = executed.last_step_time
                feedback.step, feedback.chunk_index = summary.num_steps, summary.num_chunks
                goal_handle.publish_feedback(feedback)
                if status == GoalStatus.STATUS_CANCELED:
                    raise EpisodeError("canceled")
                success_known = success_known or executed.success_known
                if executed.success_known and executed.task_success:
                    summary.success_step = executed.success_step
                    outcome = EpisodeSummary.OUTCOME_SUCCESS
                    break
            if outcome != EpisodeSummary.OUTCOME_SUCCESS:
                outcome = await self._operator_outcome(summary, success_known, outcome)
            summary.outcome = outcome
        except EpisodeError as error:
            summary.outcome = EpisodeSummary.OUTCOME_INCOMPLETE
            self.get_logger().error(f"episode {summary.episode_id} incomplete: {error}")
        except Exception:  # noqa: BLE001  a defect here still closes the bag as incomplete; the manager goes on
            summary.outcome = EpisodeSummary.OUTCOME_INCOMPLETE
            self.get_logger().error(f"episode {summary.episode_id} incomplete: {traceback.format_exc()}")
        finally:
            self.one_goal.release()
            self._running = None
        summary.end_time = self.get_clock().now().to_msg()
        if recording:
            result.bag_path = await self._stop_recording(summary, mode)
        if self.snapshot_client is not None and summary.outcome != EpisodeSummary.OUTCOME_SUCCESS:
            await self._take_snapshot(summary)
        result.summary = summary
        self.get_logger().info(
            f"episode {summary.episode_id}: {summary.outcome} after {summary.num_steps} steps"
            + (f", bag {result.bag_path}" if result.bag_path else "")
        )
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif summary.outcome == EpisodeSummary.OUTCOME_INCOMPLETE:
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return result


def main(args=None):
    spin_node(EpisodeManager, "episode_manager", args, num_threads=3)


if __name__ == "__main__":
    main()
