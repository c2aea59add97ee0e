"""Arm node: executes action chunks on an arm backend, always through the safety filter.

``arm_node`` drives a hardware backend chosen by the ``backend`` parameter (``moveit``: MoveIt 2 through
moveit_py, configured by ``moveit.*``); the simulated arm runs in sim_node.

Interfaces (relative to the node name, ``arm`` by default):
  action  ~/execute_chunk  wmpo_interfaces/ExecuteChunk   one chunk, open loop, one action per step
  service ~/reset          wmpo_interfaces/ResetEpisode   start of an episode
  service ~/release_estop  std_srvs/Trigger               clear a latched e-stop
  sub     estop            std_msgs/Bool                  true latches the e-stop (arm holds)
  sub     camera/camera_info                              observation watchdog
  pub     ~/safety_box (visualization_msgs/Marker, latched): the workspace box's edges, for rviz
  pub     ~/joint_states, ~/eef_pose, ~/eef_path, ~/commanded_action, ~/executed_action, ~/task_success,
          sim/task_state (simulation only), /diagnostics (every safety intervention)
"""

import time
from dataclasses import replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from wmpo_common.ros.node_main import spin_node
from wmpo_common.ros.parameters import Parameter, declare_parameters, in_range, non_negative, one_of, positive, vector
from wmpo_common.stamps import BadStamp, stamp_ns
from wmpo_interfaces.action import ExecuteChunk
from wmpo_interfaces.msg import ArmAction, TaskState
from wmpo_interfaces.srv import ResetEpisode
from wmpo_robot_io.arms.base import Arm, ArmState
from wmpo_robot_io.arms.moveit_arm import MoveItArm, MoveItArmConfig, MoveItError, MoveItPyClient
from wmpo_robot_io.safety import ChunkRefused, Intervention, SafetyFilter, SafetyLimits

_DOUBLE, _DOUBLES = RosParameter.Type.DOUBLE, RosParameter.Type.DOUBLE_ARRAY
SAFETY_PARAMETERS = {  # safety.<key>, run-time; no defaults: hardware needs each set, the simulator has its own
    "workspace_min": Parameter(_DOUBLES, "end-effector box minimum x, y, z [m], base frame", vector(3)),
    "workspace_max": Parameter(_DOUBLES, "end-effector box maximum x, y, z [m], base frame", vector(3)),
    "max_translation_per_step": Parameter(_DOUBLE, "largest end-effector translation per step [m]", positive),
    "max_rotation_per_step": Parameter(_DOUBLE, "largest end-effector rotation per step [rad]", positive),
    "gripper_min": Parameter(_DOUBLE, "lowest gripper command (-1 = open)", in_range(-1.0, 1.0)),
    "gripper_max": Parameter(_DOUBLE, "highest gripper command (+1 = closed)", in_range(-1.0, 1.0)),
    "observation_timeout": Parameter(_DOUBLE, "hold when the newest camera frame is older [s]", positive),
    "max_chunk_age": Parameter(_DOUBLE, "refuse chunks predicted from older observations [s]", positive),
}
PARAMETERS = {
    "real_time_factor": Parameter(
        0.0, "pace steps at control rate x this factor (0 = as fast as possible; sim only)", non_negative
    ),
}
HARDWARE_PARAMETERS = {  # arm_node only (not sim_node); the backend is built once, at start-up
    "backend": Parameter(
        "moveit", "hardware arm backend: moveit (MoveIt 2 through moveit_py)", one_of("moveit"), read_only=True
    ),
}
MOVEIT_PARAMETERS = {  # moveit.<key>, read-only: the MoveItArmConfig field of that name, which checks it
    "robot_name": "robot name for MoveItConfigsBuilder",
    "moveit_config_package": "the robot's MoveIt config package (URDF, SRDF, kinematics, pipelines)",
    "moveit_cpp_file": "MoveItCpp settings YAML (planning scene monitor, pipelines), relative to the package",
    "group": "planning group of the arm",
    "ee_link": "link moved by the actions (the tool centre point)",
    "base_frame": "frame of poses and deltas; must be MoveIt's planning frame (REP-105)",
    "home_state": "SRDF named state of the arm that reset moves to",
    "gripper_group": "planning group of the gripper",
    "gripper_open_state": "SRDF named state of the open gripper",
    "gripper_closed_state": "SRDF named state of the closed gripper",
    "gripper_joints": "gripper joints published with the arm's joint states [m]",
    "planning_pipeline": "MoveIt planning pipeline",
    "step_planner_id": "planner of each action step (LIN: straight end-effector line)",
    "named_planner_id": "planner of reset and gripper motions",
    "planning_time": "time budget per plan [s]",
    "ik_timeout": "time budget per IK query [s]",
    "max_velocity_scaling": "fraction of the joint velocity limits, (0, 1]",
    "max_acceleration_scaling": "fraction of the joint acceleration limits, (0, 1]",
    "control_freq": "the policy's nominal control rate [Hz]; each step blocks until executed",
    "instruction": "the task instruction reset returns ('' = the episode goal's)",
}


class SafetyConfigError(RuntimeError):
    """Safety limits missing or invalid; the arm does not start."""


def limits_from(values: dict) -> SafetyLimits:
    """SafetyLimits from the ``safety.*`` parameter values; ValueError when they do not fit together."""
    fields = {key: values[f"safety.{key}"] for key in SAFETY_PARAMETERS}
    for key in ("workspace_min", "workspace_max"):
        fields[key] = tuple(float(v) for v in fields[key])
    return SafetyLimits(**fields)


def limits_reason(values: dict) -> str | None:
    """Why the ``safety.*`` values do not make limits (min < max), or None."""
    try:
        limits_from(values)
    except ValueError as error:
        return str(error)
    return None


def describe(limits: SafetyLimits) -> str:
    return (
        f"workspace {limits.workspace_min}..{limits.workspace_max} m, "
        f"<= {limits.max_translation_per_step * 1000:.0f} mm and {limits.max_rotation_per_step:.2f} rad per step"
    )


def quat_msg(pose, xyzw) -> None:
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in xyzw)


def box_marker(limits: SafetyLimits, frame_id: str) -> Marker:
    """The workspace box as 12 red edges (LINE_LIST) in the arm's base frame [m]."""
    marker = Marker(type=Marker.LINE_LIST, action=Marker.ADD, ns="safety_box", id=0)
    marker.header.frame_id = frame_id
    marker.pose.orientation.w = 1.0
    marker.scale.x = 0.005  # line width, m
    marker.color.r, marker.color.a = 1.0, 0.8
    lo, hi = limits.workspace_min, limits.workspace_max
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    for i, a in enumerate(corners):
        for b in corners[i + 1 :]:
            if sum(u != v for u, v in zip(a, b, strict=True)) == 1:  # corners one axis apart: an edge
                marker.points += [Point(x=float(a[0]), y=float(a[1]), z=float(a[2]))]
                marker.points += [Point(x=float(b[0]), y=float(b[1]), z=float(b[2]))]
    return marker


def _value(value):
    """A SafetyLimits field as a parameter value (tuples as lists of floats)."""
    return [float(v) for v in value] if isinstance(value, tuple) else float(value)


class ArmNode(Node):
    """Call ``start(arm)`` once the backend exists; it declares ``safety.*``, whose checked changes
    apply from the next step on."""

    def __init__(self, name: str = "arm", **kwargs):
        super().__init__(name, **kwargs)
        declare_parameters(self, PARAMETERS)
        self.arm: Arm | None = None
        self.filter: SafetyFilter | None = None
        self.interventions = 0  # since the last reset
        self._success_step = -1

        motion = MutuallyExclusiveCallbackGroup()  # reset and execution never overlap
        inputs = ReentrantCallbackGroup()
        self.joint_pub = self.create_publisher(JointState, "~/joint_states", 10)
        self.pose_pub = self.create_publisher(PoseStamped, "~/eef_pose", 10)
        self.path_pub = self.create_publisher(Path, "~/eef_path", 10)
        self.path = Path()  # the end-effector's path since the last reset, for rviz
        self.commanded_pub = self.create_publisher(ArmAction, "~/commanded_action", 50)
        self.executed_pub = self.create_publisher(ArmAction, "~/executed_action", 50)
        self.success_pub = self.create_publisher(Bool, "~/task_success", 10)
        self.task_state_pub = self.create_publisher(TaskState, "sim/task_state", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.safety_box_pub = self.create_publisher(Marker, "~/safety_box", latched)
        self.create_subscription(Bool, "estop", self._on_estop, 10, callback_group=inputs)
        self.create_subscription(CameraInfo, "camera/camera_info", self._on_camera_info, 10, callback_group=inputs)
        self.create_service(Trigger, "~/release_estop", self._on_release_estop, callback_group=inputs)
        self.create_service(ResetEpisode, "~/reset", self._on_reset, callback_group=motion)
        self._action_server = ActionServer(
            self,
            ExecuteChunk,
            "~/execute_chunk",
            execute_callback=self._execute,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=motion,
        )

    # -- set-up ------------------------------------------------------------------------------
    def start(self, arm: Arm) -> None:
        limits = self.declare_limits(arm)
        self.filter = SafetyFilter(limits, arm.action_scale)
        self.arm = arm
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.safety_box_pub.publish(box_marker(limits, arm.frame_id))
        self.get_logger().info(f"{type(arm).__name__} ready; {describe(limits)}")

    def release(self) -> None:
        """Release the arm backend, once started."""
        if self.arm is not None:
            self.arm.close()

    def declare_limits(self, arm: Arm) -> SafetyLimits:
        """Declare the checked ``safety.*``; unset ones take the backend's defaults (never on hardware)."""
        defaults = None if arm.is_real_hardware else arm.default_limits()
        specs = SAFETY_PARAMETERS
        if defaults is not None:
            specs = {key: replace(spec, default=_value(getattr(defaults, key))) for key, spec in specs.items()}
        try:
            declare_parameters(self, specs, prefix="safety.", consistency=limits_reason)
        except ParameterUninitializedException:  # declare_parameters reads them all: one has no value
            missing = [f"safety.{key}" for key in SAFETY_PARAMETERS if self.optional_parameter(f"safety.{key}") is None]
            raise SafetyConfigError(
                "refusing to drive real hardware without explicit safety limits; set " + ", ".join(missing)
            ) from None
        except ValueError as error:
            raise SafetyConfigError(f"invalid safety limits: {error}") from None
        return self.limits()

    def limits(self) -> SafetyLimits:
        return limits_from({f"safety.{key}": self.get_parameter(f"safety.{key}").value for key in SAFETY_PARAMETERS})

    def _on_parameters_set(self, parameters) -> None:
        """After every check passed: new safety limits filter from the next step on."""
        if any(p.name.startswith("safety.") for p in parameters):
            self.filter.limits = limits = self.limits()
            self.safety_box_pub.publish(box_marker(limits, self.arm.frame_id))
            self.get_logger().warning(f"safety limits changed at run time: {describe(limits)}")

    def optional_parameter(self, name: str):
        """The parameter's value, or None when it was declared without a value and never set."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    # -- inputs ------------------------------------------------------------------------------
    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self.filter.estop_latched:
            self.filter.latch_estop("estop topic")
            self.arm.hold()
            self.report(Intervention("estop", "e-stop latched from the estop topic; arm holds", True))

    def _on_release_estop(self, _request, response):
        was = self.filter.estop_latched
        self.filter.release_estop()
        response.success = True
        response.message = "e-stop released" if was else "e-stop was not latched"
        self.get_logger().warning(response.message)
        return response

    def _on_camera_info(self, _msg: CameraInfo) -> None:
        if self.filter is not None:
            self.filter.observation_received(time.monotonic())

    def _on_reset(self, request, response):
        try:
            start = self.arm.reset(request.task, request.seed, request.init_state_id)
        except (ValueError, RuntimeError) as error:
            response.success, response.message = False, str(error)
            self.get_logger().error(f"reset failed: {error}")
            return response
        self.interventions = 0
        self._success_step = -1
        self.path = Path()
        self.filter.motion_finished(time.monotonic())
        self.publish_state(start.state)
        response.success = True
        response.instruction = start.instruction
        response.default_max_steps = start.default_max_steps
        response.stamp = Time(nanoseconds=start.state.stamp_ns).to_msg()
        return response

    # -- execution ---------------------------------------------------------------------------
    def _execute(self, goal_handle):
        chunk = goal_handle.request.chunk
        result = ExecuteChunk.Result()
        result.success_known = False
        result.success_step = self._success_step
        now_ns = self.get_clock().now().nanoseconds
        try:
            if self.arm.state is None:
                raise ChunkRefused(Intervention("not_reset", "the arm was never reset; call ~/reset first", True))
            try:
                chunk_age = (now_ns - stamp_ns(chunk.header.stamp)) / 1e9
            except BadStamp as error:
                raise ChunkRefused(Intervention("bad_stamp", str(error), True)) from None
            if len(chunk.actions) != chunk.horizon * chunk.action_dim:
                raise ChunkRefused(
                    Intervention(
                        "bad_shape",
                        f"{len(chunk.actions)} values for horizon {chunk.horizon} x action_dim {chunk.action_dim}",
                        True,
                    )
                )
            actions = np.asarray(chunk.actions, dtype=np.float64).reshape(chunk.horizon, chunk.action_dim)
            actions = self.filter.check_chunk(actions, time.monotonic(), chunk_age)
        except ChunkRefused as refusal:
            self.report(refusal.intervention)
            goal_handle.abort()
            result.message = f"chunk refused: {refusal.intervention.message}"
            return result

        factor = self.get_parameter("real_time_factor").value
        period = self.arm.control_period / factor if factor > 0 else 0.0
        state: ArmState = self.arm.state
        feedback = ExecuteChunk.Feedback()
        for index, action in enumerate(actions):
            if goal_handle.is_cancel_requested:
                self.arm.hold()
                goal_handle.canceled()
                result.message = f"canceled after {index} steps"
                break
            tick = time.monotonic()
            try:  # e-stop or the watchdog may have fired during the chunk; the backend may refuse the step
                self.filter.check_chunk(actions[index:], tick, 0.0)
                safe, events = self.filter.filter_step(action, state.eef_pos)
                for event in events:
                    self.report(event)
                state = self.arm.apply(safe)
            except ChunkRefused as refusal:
                self.arm.hold()
                self.report(refusal.intervention)
                goal_handle.abort()
                result.message = f"stopped after {index} steps: {refusal.intervention.message}"
                break
            self.publish_step(state, action, safe, modified=bool(events))
            result.steps_executed = index + 1
            feedback.step = state.step
            goal_handle.publish_feedback(feedback)
            if state.success is not None:
                result.success_known = True
                if state.success and self._success_step < 0:
                    self._success_step = state.step
                result.task_success = self._success_step >= 0
                result.success_step = self._success_step
                if result.task_success:
                    break  # the episode is over: do not keep moving after success
            if period:
                time.sleep(max(0.0, period - (time.monotonic() - tick)))
        self.filter.motion_finished(time.monotonic())
        result.last_step_time = Time(nanoseconds=state.stamp_ns).to_msg()
        if goal_handle.is_active:  # not aborted or canceled: finished, or stopped at success
            result.completed = result.steps_executed == len(actions)
            result.message = result.message or f"executed {result.steps_executed} of {len(actions)} steps"
            goal_handle.succeed()
        result.safety_interventions = self.interventions
        return result

    # -- outputs -----------------------------------------------------------------------------
    def report(self, event: Intervention) -> None:
        """Log and publish one safety intervention (ERROR when motion was refused)."""
        self.interventions += 1
        if event.refused:
            self.get_logger().error(f"safety: {event.kind}: {event.message}")
        else:
            self.get_logger().warning(f"safety: {event.kind}: {event.message}")
        status = DiagnosticStatus()
        status.level = DiagnosticStatus.ERROR if event.refused else DiagnosticStatus.WARN
        status.name = f"{self.get_name()}: safety filter"
        status.hardware_id = type(self.arm).__name__
        status.message = event.message
        status.values = [KeyValue(key="kind", value=event.kind), KeyValue(key="refused", value=str(event.refused))]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self.diagnostics_pub.publish(array)

    def publish_step(self, state: ArmState, commanded: np.ndarray, executed: np.ndarray, modified: bool) -> None:
        stamp = Time(nanoseconds=state.stamp_ns).to_msg()
        for pub, values in ((self.commanded_pub, commanded), (self.executed_pub, executed)):
            msg = ArmAction()
            msg.header.stamp = stamp
            msg.header.frame_id = self.arm.frame_id
            msg.step = state.step - 1  # the action that led to this state
            msg.action = [float(v) for v in values]
            msg.modified = modified
            pub.publish(msg)
        self.publish_state(state)

    def publish_state(self, state: ArmState) -> None:
        stamp = Time(nanoseconds=state.stamp_ns).to_msg()
        joints = JointState()
        joints.header.stamp = stamp
        joints.name = [*state.joint_names, *state.gripper_joint_names]
        joints.position = [float(v) for v in np.concatenate([state.joint_pos, state.gripper_qpos])]
        self.joint_pub.publish(joints)
        pose = PoseStamped()
        pose.header.stamp = stamp
        pose.header.frame_id = self.arm.frame_id
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in state.eef_pos)
        quat_msg(pose.pose, state.eef_quat_xyzw)
        self.pose_pub.publish(pose)
        self.path.header = pose.header
        self.path.poses.append(pose)
        self.path_pub.publish(self.path)
        if state.success is not None:
            self.success_pub.publish(Bool(data=bool(state.success)))
        if state.objects:
            task_state = TaskState()
            task_state.header = pose.header
            task_state.task = getattr(self.arm, "task_name", "")
            task_state.step = state.step
            task_state.eef_pose = pose.pose
            task_state.gripper_opening = float(abs(state.gripper_qpos[0] - state.gripper_qpos[1]))
            task_state.success = bool(state.success)
            for name, (position, quat) in state.objects.items():
                object_pose = PoseStamped().pose
                object_pose.position.x, object_pose.position.y, object_pose.position.z = (float(v) for v in position)
                quat_msg(object_pose, quat)
                task_state.object_names.append(name)
                task_state.object_poses.append(object_pose)
            self.task_state_pub.publish(task_state)


def moveit_config(node: Node) -> MoveItArmConfig:
    """The MoveIt backend's configuration from the node's ``moveit.*`` parameters."""
    values = {key: node.get_parameter(f"moveit.{key}").value for key in MOVEIT_PARAMETERS}
    return MoveItArmConfig(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})


def declare_hardware_parameters(node: Node) -> None:
    """``backend`` and ``moveit.*``, read-only: the backend is built once, at start-up."""
    declare_parameters(node, HARDWARE_PARAMETERS)
    defaults = MoveItArmConfig()
    moveit = {key: Parameter(getattr(defaults, key), doc, read_only=True) for key, doc in MOVEIT_PARAMETERS.items()}
    declare_parameters(node, moveit, prefix="moveit.")


def start_hardware_arm() -> ArmNode:
    """The arm node on the hardware backend that its ``backend`` and ``moveit.*`` parameters name."""
    node = ArmNode()
    declare_hardware_parameters(node)
    config = moveit_config(node)
    arm = MoveItArm(config, MoveItPyClient(config))
    try:
        node.start(arm)
    except BaseException:
        arm.close()
        raise
    return node


def main(args=None):
    """Hardware arms only; the simulated arm runs inside sim_node."""
    fatal = (ValueError, SafetyConfigError, MoveItError)
    spin_node(start_hardware_arm, "arm", args, num_threads=4, fatal=fatal, on_exit=ArmNode.release)


if __name__ == "__main__":
    main()
