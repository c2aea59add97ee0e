"""Policy server: serves action chunks predicted from the latest camera image and instruction.

Interfaces (node ``policy_server``):
  service ~/get_action_chunk    wmpo_interfaces/GetActionChunk  chunk from an image stamped >= not_before
  pub     ~/action_chunk        wmpo_interfaces/ActionChunk     every served chunk (inspection, bags)
  pub     ~/action_chunk_markers visualization_msgs/MarkerArray the chunk's end-effector path, for rviz
  pub     /diagnostics          diagnostic_msgs/DiagnosticArray  every rejected (malformed) image
  sub     camera/image_raw      sensor_msgs/Image (rgb8/bgr8; malformed images are logged and dropped)
  sub     instruction           std_msgs/String (transient local; each new one starts an episode)
  sub     arm/eef_pose          geometry_msgs/PoseStamped (to draw the path from the gripper)
  sub     sim/task_state        wmpo_interfaces/TaskState (only for backends that need it)
"""

import bisect
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from visualization_msgs.msg import Marker, MarkerArray

from wmpo_episodes.deadlines import Deadlines
from wmpo_episodes.node_main import spin_node
from wmpo_interfaces.msg import ActionChunk, TaskState
from wmpo_interfaces.srv import GetActionChunk
from wmpo_policy.backends import scripted_expert, vla_backend  # noqa: F401  (register the backends)
from wmpo_policy.backends.base import ObjectPose, Observation, PolicyBackend, PrivilegedState, make_backend
from wmpo_policy.temporal_ensemble import TemporalEnsemble
from wmpo_robot_io.images import ImageError, from_image_msg

PARAMETERS = {
    "backend": ("scripted_expert", "policy backend (registered name): scripted_expert | vla"),
    "checkpoint": ("", "vla: checkpoint folder (config.json, model.safetensors, tokenizer, action_stats.json)"),
    "device": ("cpu", "vla: torch device (cpu, cuda, cuda:1)"),
    "temperature": (0.0, "vla: sampling temperature (0 = greedy, as in evaluation)"),
    "marker_frame": ("world", "frame_id of the chunk markers (the arm's base frame)"),
    "translation_scale": (0.05, "metres per unit translation action, to draw the path"),
    "temporal_ensembling": (False, "blend overlapping chunks (ACT); useful with episode_manager execute_steps < K"),
    "ensemble_decay": (0.01, "ACT weight exp(-decay * i) over predictions for a step, oldest first"),
}
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
        for key, (default, doc) in PARAMETERS.items():
            self.declare_parameter(key, default, ParameterDescriptor(description=doc))
        self.backend = backend or self._backend_from_parameters()
        self.ensemble = (
            TemporalEnsemble(self.get_parameter("ensemble_decay").value)
            if self.get_parameter("temporal_ensembling").value
            else None
        )
        self.images_received = 0
        self.images_rejected = 0
        self.late_images = 0  # images stamped >= a request's not_before that came after it gave up
        self._last_rejection = ""
        self._images: list[tuple[int, np.ndarray]] = []  # (stamp ns, image), oldest first, IMAGES_KEPT
        self._task_states: deque[TaskState] = deque(maxlen=32)
        self._instruction = ""
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
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f"serving {self.backend.policy_id}")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Deploy: a new backend, checkpoint, device or temperature takes effect from the next
        chunk (``ros2 param set /policy_server checkpoint <folder>``). A policy that does not load
        is refused with the reason, and the current one keeps serving."""
        changed = {p.name: p.value for p in parameters}
        if not changed.keys() & {"backend", "checkpoint", "device", "temperature"}:
            return SetParametersResult(successful=True)
        try:
            backend = self._backend_from_parameters(changed)
            if backend.needs_privileged_state and not self._has_task_state:
                raise ValueError(f"{backend.policy_id} needs sim/task_state: start the server with that backend")
        except ValueError as error:
            self.get_logger().error(f"kept {self.backend.policy_id}: the new policy does not load: {error}")
            return SetParametersResult(successful=False, reason=str(error))
        with self._lock:
            self.backend = backend
        self.get_logger().info(f"now serving {backend.policy_id}")
        return SetParametersResult(successful=True)

    def _backend_from_parameters(self, changed: dict | None = None) -> PolicyBackend:
        """The backend the parameters describe; ``changed`` overrides values about to be set."""
        value = {key: self.get_parameter(key).value for key in PARAMETERS} | (changed or {})
        if value["backend"] == "vla":
            return make_backend("vla", **{key: value[key] for key in ("checkpoint", "device", "temperature")})
        return make_backend(value["backend"])

    # -- inputs ------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            image = from_image_msg(msg)
        except ImageError as error:
            self.images_rejected += 1
            self._last_rejection = str(error)
            self.get_logger().error(f"rejected image #{self.images_rejected}: {error}")
            self._report_rejection(str(error))
            return
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
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

    def _report_rejection(self, reason: str) -> None:
        status = DiagnosticStatus(level=DiagnosticStatus.ERROR, name=f"{self.get_name()}: camera input")
        status.message = f"rejected image: {reason}"
        status.values = [
            KeyValue(key="kind", value="malformed_image"),
            KeyValue(key="count", value=str(self.images_rejected)),
        ]
        self.diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        )

    def _on_task_state(self, msg: TaskState) -> None:
        with self._lock:
            self._task_states.append(msg)
            self._wake_waiting()

    def _on_instruction(self, msg: String) -> None:
        self._instruction = msg.data
        self.backend.reset()
        if self.ensemble is not None:
            self.ensemble.reset()
        self.get_logger().info(f"new episode: {msg.data!r}")

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
                match = [s for s in self._task_states if Time.from_msg(s.header.stamp).nanoseconds == stamp]
                if not match:
                    continue
                privileged = privileged_from_msg(match[-1])
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
            if not self._images:
                return f"no image received yet, {self.images_rejected} rejected"
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

    async def _serve(self, request, response):
        not_before = Time.from_msg(request.not_before).nanoseconds
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
        try:
            actions = np.asarray(self.backend.predict_chunk(observation), dtype=np.float32)
            if self.ensemble is not None:
                actions = self.ensemble.add(request.step, actions).astype(np.float32)
        except ValueError as error:
            response.success, response.message = False, f"policy failed: {error}"
            self.get_logger().error(response.message)
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
