"""Policy server: serves action chunks predicted from the latest camera image and instruction.

Interfaces (node ``policy_server``):
  service ~/get_action_chunk    wmpo_interfaces/GetActionChunk  chunk from an image stamped >= not_before
  pub     ~/action_chunk        wmpo_interfaces/ActionChunk     every served chunk (inspection, bags)
  pub     ~/action_chunk_markers visualization_msgs/MarkerArray the chunk's end-effector path, for rviz
  pub     /diagnostics          diagnostic_msgs/DiagnosticArray  every rejected image, every policy error
  sub     camera/image_raw      sensor_msgs/Image (rgb8/bgr8; malformed images and images stamped
                                more than future_tolerance ahead of this node's clock are refused)
  sub     instruction           std_msgs/String (transient local; each new one starts an episode,
                                until requests name their episode: then they start episodes)

An episode starts with a request whose ``episode_id`` is new (the request carries the instruction,
so it never races the topic): frames stamped before its ``not_before`` or in the future are
dropped, the backend and the temporal ensemble are reset. Any error of a backend fails that
request only (success false, the reason; logged and on /diagnostics); the server keeps serving.
  sub     arm/eef_pose          geometry_msgs/PoseStamped (to draw the path from the gripper)
  sub     sim/task_state        wmpo_interfaces/TaskState (only for backends that need it)
"""

import bisect
import re
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from visualization_msgs.msg import Marker, MarkerArray

from wmpo_common.ros.deadlines import Deadlines
from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, declare_parameters, in_range, non_empty, non_negative, positive
from wmpo_common.stamps import BadStamp, stamp_ns
from wmpo_interfaces.msg import ActionChunk, TaskState
from wmpo_interfaces.srv import GetActionChunk
from wmpo_policy.backends import scripted_expert, vla_backend  # noqa: F401  (register the backends)
from wmpo_policy.backends.base import (
    BACKENDS,
    ObjectPose,
    Observation,
    PolicyBackend,
    PrivilegedState,
    make_backend,
)
from wmpo_policy.temporal_ensemble import TemporalEnsemble
from wmpo_robot_io.images import ImageError, from_image_msg


def known_backend(value) -> str | None:
    return None if value in BACKENDS else f"unknown policy backend {value!r}; known: {', '.join(sorted(BACKENDS))}"


def torch_device(value) -> str | None:
    ok = isinstance(value, str) and re.fullmatch(r"cpu|mps|cuda(:\d+)?", value)
    return None if ok else f"must be a torch device (cpu, cuda, cuda:N, mps), got {value!r}"


# Every parameter is run-time; a change of the first four deploys a new policy (refused, the
# current one kept, if it does not load); the checkpoint's check is that it loads.
PARAMETERS = {
    "backend": Parameter("scripted_expert", "policy backend (registered name): scripted_expert | vla", known_backend),
    "checkpoint": Parameter(
        "", "vla: checkpoint folder (config.json, model.safetensors, tokenizer, action_stats.json); must load"
    ),
    "device": Parameter("cpu", "vla: torch device (cpu, cuda, cuda:1, mps)", torch_device),
    "temperature": Parameter(0.0, "vla: sampling temperature >= 0 (0 = greedy, as in evaluation)", non_negative),
    "marker_frame": Parameter("world", "frame_id of the chunk markers (the arm's base frame)", non_empty),
    "translation_scale": Parameter(0.05, "metres per unit translation action, to draw the path (> 0)", positive),
    "temporal_ensembling": Parameter(
        False,
        "blend overlapping chunks (ACT); useful with episode_manager execute_steps < K. "
        "A run-time change applies from the next episode",
    ),
    "ensemble_decay": Parameter(
        0.01,
        "ACT weight exp(-decay * i) over predictions for a step, oldest first, in [-50, 50]. "
        "A run-time change applies from the next episode",
        in_range(-50.0, 50.0),
    ),
    "future_tolerance": Parameter(
        0.1,
        "s a camera frame or observation may be stamped ahead of this node's clock (clock skew); "
        "frames further ahead are refused, as are chunks from such observations",
        non_negative,
    ),
}
DEPLOY = {"backend", "checkpoint", "device", "temperature"}
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
IMAGES_KEPT = 8  # newest camera frames held for requests


def chunk_to_msg(actions: np.ndarray, stamp, frame_id: str, policy_id: str, normalization_id: str) -> ActionChunk:
    msg = ActionChunk()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.horizon, msg.action_dim = int(actions.shape[0]), int(actions.shape[1])
    msg.actions = [float(v) for v in actions.reshape(-1)]
    msg.policy_id = policy_id
    msg.normalization_id = normalization_id
    return msg


def privileged_from_msg(msg: TaskState) -> PrivilegedState:
    def vec(p):
        return np.array([p.x, p.y, p.z])

    def quat(q):
        return np.array([q.x, q.y, q.z, q.w])

    objects = {
        name: ObjectPose(vec(pose.position), quat(pose.orientation))
        for name, pose in zip(msg.object_names, msg.object_poses, strict=True)
    }
    return PrivilegedState(
        msg.task, msg.step, vec(msg.eef_pose.position), quat(msg.eef_pose.orientation), msg.gripper_opening, objects
    )


class PolicyServer(Node):
    def __init__(self, backend: PolicyBackend | None = None, **kwargs):
        super().__init__("policy_server", **kwargs)
        declare_parameters(self, PARAMETERS)
        self.backend = backend or self._backend_from_parameters()
        self.ensemble = self._new_ensemble()
        self.images_received = 0
        self.images_rejected = 0  # malformed or stamped in the future
        self.policy_errors = 0
        self.requests_refused = 0  # malformed chunk requests (a stamp that is not a time, a bad timeout)
        self.instructions_received = 0
        self.late_images = 0  # images stamped >= a request's not_before that came after it gave up
        self._last_rejection = ""
        self._images: list[tuple[int, np.ndarray]] = []  # (stamp ns, image), oldest first, IMAGES_KEPT
        self._task_states: deque[tuple[int, PrivilegedState]] = deque(maxlen=32)  # (stamp ns, state)
        self._instruction = ""
        self._topic_instruction = ""  # the latest on the instruction topic
        self._episode_id = ""  # the episode the requests named ('' = episodes follow the topic)
        self._loaded: PolicyBackend | None = None  # a policy loaded by a parameter change, until it is set
        self._eef_pose: PoseStamped | None = None
        self._lock = threading.Lock()  # inputs arrive on several executor threads
        self._waiting: list[tuple[int, Future]] = []  # (not_before ns, future of an Observation)
        self._gave_up: tuple[int, float] | None = None  # (not_before ns, monotonic s) of the last timed-out request

        inputs = ReentrantCallbackGroup()
        self.create_subscription(Image, "camera/image_raw", self._on_image, 10, callback_group=inputs)
        self.create_subscription(String, "instruction", self._on_instruction, LATCHED, callback_group=inputs)
        self.create_subscription(PoseStamped, "arm/eef_pose", self._on_eef_pose, 10, callback_group=inputs)
        self._has_task_state = self.backend.needs_privileged_state
        if self._has_task_state:
            self.create_subscription(TaskState, "sim/task_state", self._on_task_state, 10, callback_group=inputs)
        self.chunk_pub = self.create_publisher(ActionChunk, "~/action_chunk", 10)
        self.marker_pub = self.create_publisher(MarkerArray, "~/action_chunk_markers", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(
            GetActionChunk, "~/get_action_chunk", self._serve, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.deadlines = Deadlines(self, before_check=self._check_waiting)  # every tick: a last look
        self.add_on_set_parameters_callback(self._load_policy)  # runs before the checks: skips bad values
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.get_logger().info(f"serving {self.backend.policy_id}")

    def _load_policy(self, parameters) -> SetParametersResult:
        """Deploy, step 1: a new backend, checkpoint, device or temperature is loaded now, so that a
        policy that does not load is refused with the reason (``ros2 param set /policy_server
        checkpoint <folder>``); the current one keeps serving."""
        self._loaded = None
        changed = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        bad = [key for key, value in changed.items() if PARAMETERS[key].check and PARAMETERS[key].check(value)]
        if not changed.keys() & DEPLOY or bad:
            return SetParametersResult(successful=True)  # nothing to load, or the checks refuse it
        try:
            backend = self._backend_from_parameters(changed)
            if backend.needs_privileged_state and not self._has_task_state:
                raise ValueError(f"{backend.policy_id} needs sim/task_state: start the server with that backend")
        except Exception as error:  # noqa: BLE001  loaders raise many types (torch, safetensors, json)
            self.get_logger().error(f"kept {self.backend.policy_id}: the new policy does not load: {error}")
            return SetParametersResult(successful=False, reason=str(error))
        self._loaded = backend
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, parameters) -> None:
        """Deploy, step 2 (every check passed): serve the loaded policy from the next chunk."""
        if self._loaded is not None:
            with self._lock:
                self.backend, self._loaded = self._loaded, None
            self.get_logger().info(f"now serving {self.backend.policy_id}")
        names = {p.name for p in parameters} & {"temporal_ensembling", "ensemble_decay"}
        if names:
            self.get_logger().info(f"{', '.join(sorted(names))}: applies from the next episode")

    def _backend_from_parameters(self, changed: dict | None = None) -> PolicyBackend:
        """The backend the parameters describe; ``changed`` overrides values about to be set."""
        value = {key: self.get_parameter(key).value for key in PARAMETERS} | (changed or {})
        if value["backend"] == "vla":
            return make_backend("vla", **{key: value[key] for key in ("checkpoint", "device", "temperature")})
        return make_backend(value["backend"])

    def _new_ensemble(self) -> TemporalEnsemble | None:
        if not self.get_parameter("temporal_ensembling").value:
            return None
        return TemporalEnsemble(self.get_parameter("ensemble_decay").value)

    def _ahead_ns(self, stamp_ns: int) -> int:
        """How far ``stamp_ns`` is ahead of this node's clock beyond future_tolerance (> 0: too far)."""
        tolerance = int(self.get_parameter("future_tolerance").value * 1e9)
        return stamp_ns - self.get_clock().now().nanoseconds - tolerance

    # -- inputs ------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            stamp = stamp_ns(msg.header.stamp)
            image = from_image_msg(msg)
        except (BadStamp, ImageError) as error:
            self._reject_image(str(error), "malformed_image")
            return
        if self._ahead_ns(stamp) > 0:
            ahead = (stamp - self.get_clock().now().nanoseconds) / 1e9
            self._reject_image(
                f"stamped {ahead:.3f} s in the future (future_tolerance "
                f"{self.get_parameter('future_tolerance').value} s): is the camera's clock ahead of this node's?",
                "future_image",
            )
            return
        with self._lock:
            # in stamp order, not arrival order: image callbacks run on several executor threads, so
            # the frame before the newest can be appended after it (and then hid it from requests)
            bisect.insort(self._images, (stamp, image), key=lambda item: item[0])
            del self._images[:-IMAGES_KEPT]
            self.images_received += 1
            self._wake_waiting()
            late = self._gave_up if self._gave_up is not None and stamp >= self._gave_up[0] else None
            if late is not None:
                self._gave_up = None
                self.late_images += 1
        if late is not None:  # the requested frame, late, if the stamps are close; a later frame if not
            self.get_logger().warning(
                f"image stamped {stamp} ns arrived {time.monotonic() - late[1]:.2f} s after a request for one "
                f"stamped >= {late[0]} ns gave up"
            )

    def _reject_image(self, reason: str, kind: str) -> None:
        self.images_rejected += 1
        self._last_rejection = reason
        self.get_logger().error(f"rejected image #{self.images_rejected}: {reason}")
        self._report("camera input", f"rejected image: {reason}", kind, self.images_rejected)

    def _report(self, what: str, message: str, kind: str, count: int) -> None:
        """One ERROR status on /diagnostics."""
        status = DiagnosticStatus(level=DiagnosticStatus.ERROR, name=f"{self.get_name()}: {what}", message=message)
        status.values = [KeyValue(key="kind", value=kind), KeyValue(key="count", value=str(count))]
        self.diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        )

    def _on_task_state(self, msg: TaskState) -> None:
        try:  # converted now: a malformed one is dropped here, not met by a request
            stamp, state = stamp_ns(msg.header.stamp), privileged_from_msg(msg)
        except ValueError as error:
            self.get_logger().error(f"dropped a task state: {error}")
            return
        with self._lock:
            self._task_states.append((stamp, state))
            self._wake_waiting()

    def _on_instruction(self, msg: String) -> None:
        """A new episode, unless the requests name their episodes (then they start them)."""
        self._topic_instruction = msg.data
        if not self._episode_id:
            try:
                self._start_episode(msg.data)
            except Exception as error:  # noqa: BLE001  a backend's reset: report it, keep serving
                self._policy_error(f"episode start failed: {type(error).__name__}: {error}")
        self.instructions_received += 1

    def _start_episode(
        self,
        instruction: str,
        episode_id: str = "",
        not_before_ns: int | None = None,
        sampling_seed: int | None = None,
    ) -> None:
        """Forget the previous episode: its frames (stamped before ``not_before_ns``, or in the
        future), the backend's state and the ensemble (with the ensembling parameters now set);
        a sampling backend restarts from ``sampling_seed`` when one is given."""
        with self._lock:
            self._episode_id, self._instruction = episode_id, instruction
            self._images = [
                (stamp, image)
                for stamp, image in self._images
                if (not_before_ns is None or stamp >= not_before_ns) and self._ahead_ns(stamp) <= 0
            ]
            self.ensemble = self._new_ensemble()
        self.get_logger().info(f"new episode {episode_id or '(instruction topic)'}: {instruction!r}")
        self.backend.reset(sampling_seed)

    def _on_eef_pose(self, msg: PoseStamped) -> None:
        self._eef_pose = msg

    # -- serving -----------------------------------------------------------------------------
    def _observation(self, not_before_ns: int) -> Observation | None:
        """The newest observation stamped >= not_before, complete with privileged state if needed."""
        for stamp, image in reversed(self._images):
            if stamp < not_before_ns:
                break
            privileged = None
            if self.backend.needs_privileged_state:
                match = [state for state_stamp, state in self._task_states if state_stamp == stamp]
                if not match:
                    continue
                privileged = match[-1]
            return Observation(image, self._instruction, stamp, privileged)
        return None

    def _wake_waiting(self) -> None:
        """Hand each waiting request its observation once one is complete (call with the lock)."""
        still_waiting = []
        for not_before, future in self._waiting:
            if future.cancelled():
                continue
            observation = self._observation(not_before)
            if observation is None:
                still_waiting.append((not_before, future))
            else:
                future.set_result(observation)
        self._waiting = still_waiting

    def _check_waiting(self) -> None:
        with self._lock:
            self._wake_waiting()

    def _inputs_seen(self) -> str:
        """What the server holds, for a timeout's message: a missing frame vs a stale one."""
        with self._lock:
            if not self._images and not self.images_received:
                return f"no image received yet, {self.images_rejected} rejected"
            if not self._images:
                return f"no image held since the episode began, {self.images_received} received"
            return f"newest image stamped {self._images[-1][0]} ns, {self.images_received} received"

    async def _next_observation(self, not_before: int, timeout: float) -> Observation | None:
        """Wait, without holding an executor thread, for an observation stamped >= not_before."""
        future = Future()
        with self._lock:
            self._waiting.append((not_before, future))
            self._wake_waiting()
        await self.deadlines.watch(future, timeout)
        if future.cancelled():
            with self._lock:
                self._gave_up = (not_before, time.monotonic())
            return None
        return future.result()

    def _policy_error(self, message: str) -> str:
        self.policy_errors += 1
        self.get_logger().error(message)
        self._report("policy", message, "policy_error", self.policy_errors)
        return message

    def _refuse(self, reason: str) -> str:
        """A malformed request: logged and reported on /diagnostics; the message answered."""
        self.requests_refused += 1
        self.get_logger().error(f"refused a chunk request: {reason}")
        self._report("chunk request", reason, "bad_request", self.requests_refused)
        return reason

    async def _serve(self, request, response):
        response.success = False
        try:
            not_before = stamp_ns(request.not_before, "not_before")
        except BadStamp as error:
            response.message = self._refuse(str(error))
            return response
        if reason := non_negative(request.timeout):  # NaN would wait for ever: no deadline passes it
            response.message = self._refuse(f"timeout {reason}")
            return response
        if request.episode_id and request.episode_id != self._episode_id:
            try:
                instruction = request.instruction or self._topic_instruction
                seed = request.sampling_seed if request.sampling_seed >= 0 else None
                self._start_episode(instruction, request.episode_id, not_before, seed)
            except Exception as error:  # noqa: BLE001  a backend's reset: fail this request, keep serving
                response.message = self._policy_error(f"episode start failed: {type(error).__name__}: {error}")
                return response
        observation = await self._next_observation(not_before, request.timeout)
        if observation is None:
            response.success = False
            response.message = (
                f"no complete observation stamped >= {not_before} ns within {request.timeout:.1f} s"
                f" ({self._inputs_seen()})"
            )
            if self._last_rejection:
                response.message += f" (last rejected image: {self._last_rejection})"
            self.get_logger().error(response.message)
            return response
        if self._ahead_ns(observation.stamp_ns) > 0:  # a negative age: the clock went back, or the tolerance down
            ahead = (observation.stamp_ns - self.get_clock().now().nanoseconds) / 1e9
            response.message = self._policy_error(
                f"refused: the observation is stamped {ahead:.3f} s in the future "
                f"(future_tolerance {self.get_parameter('future_tolerance').value} s)"
            )
            return response
        try:
            actions = np.asarray(self.backend.predict_chunk(observation), dtype=np.float32)
            if self.ensemble is not None:
                actions = self.ensemble.add(request.step, actions).astype(np.float32)
            if not np.all(np.isfinite(actions)):  # never served nor published (bags keep ~/action_chunk)
                raise ValueError(f"{np.count_nonzero(~np.isfinite(actions))} non-finite value(s) in the chunk")
        except Exception as error:  # noqa: BLE001  any backend error (torch raises RuntimeError) fails this request only
            response.message = self._policy_error(f"policy failed: {type(error).__name__}: {error}")
            return response
        stamp = Time(nanoseconds=observation.stamp_ns).to_msg()
        chunk = chunk_to_msg(
            actions,
            stamp,
            self.get_parameter("marker_frame").value,
            self.backend.policy_id,
            self.backend.normalization_id,
        )
        self.chunk_pub.publish(chunk)
        self.marker_pub.publish(self._markers(actions, stamp))
        response.success, response.chunk = True, chunk
        return response

    def _markers(self, actions: np.ndarray, stamp) -> MarkerArray:
        """The chunk as the end-effector path it commands: a line from the gripper plus one
        sphere per step, green while the gripper opens and red while it closes."""
        start = np.zeros(3)
        if self._eef_pose is not None:
            p = self._eef_pose.pose.position
            start = np.array([p.x, p.y, p.z])
        path = start + np.cumsum(actions[:, :3] * self.get_parameter("translation_scale").value, axis=0)
        line, dots = Marker(), Marker()
        for marker, kind, marker_id in ((line, Marker.LINE_STRIP, 0), (dots, Marker.SPHERE_LIST, 1)):
            marker.header.stamp = stamp
            marker.header.frame_id = self.get_parameter("marker_frame").value
            marker.ns, marker.id, marker.type, marker.action = "action_chunk", marker_id, kind, Marker.ADD
            marker.pose.orientation.w = 1.0
        line.scale.x = 0.004
        line.color.r = line.color.g = line.color.b = line.color.a = 1.0
        dots.scale.x = dots.scale.y = dots.scale.z = 0.012
        line.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in np.vstack([start, path])]
        dots.points = line.points[1:]
        for gripper in actions[:, 6]:
            closing = float(gripper > 0)
            color = type(line.color)(r=closing, g=1.0 - closing, b=0.0, a=1.0)
            dots.colors.append(color)
        return MarkerArray(markers=[line, dots])


def main(args=None):
    spin_node(PolicyServer, "policy_server", args, num_threads=3)


if __name__ == "__main__":
    main()
