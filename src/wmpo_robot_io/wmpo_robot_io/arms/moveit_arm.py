"""A physical arm on MoveIt 2 through moveit_py: each delta action becomes a planning-scene-checked target.

Frames (REP-103/105): positions and deltas are in ``base_frame``, which must be MoveIt's planning frame
(the robot model's root, e.g. ``world`` or ``base_link``); x forward, y left, z up; quaternions xyzw.
``MoveItArm`` talks to MoveIt only through a ``MoveItClient``: ``MoveItPyClient`` is the real one, and
imports moveit_py when it connects, so this module imports everywhere.
"""

import copy
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Pose

from wmpo_robot_io.arms.base import Arm, ArmState, EpisodeStart
from wmpo_robot_io.safety import ChunkRefused, Intervention

MIN_MOTION = 1e-4  # m and rad: a smaller arm step is not sent to MoveIt (the gripper still is)
MOVEIT_NODE_NAME = "arm_moveit_py"


class MoveItError(RuntimeError):
    """MoveIt is missing, misconfigured, or failed to plan or execute a motion."""


@dataclass(frozen=True)
class MoveItArmConfig:
    """The cell's MoveIt set-up; every name must exist in the robot's MoveIt config (URDF/SRDF)."""

    robot_name: str = "moveit_resources_panda"  # MoveItConfigsBuilder robot name
    moveit_config_package: str = "moveit_resources_panda_moveit_config"
    moveit_cpp_file: str = "config/moveit_cpp.yaml"  # MoveItCpp settings, relative to the package or absolute
    group: str = "panda_arm"  # planning group of the arm
    ee_link: str = "panda_hand_tcp"  # the link whose pose the actions move
    base_frame: str = "world"  # frame of poses and deltas: MoveIt's planning frame
    home_state: str = "ready"  # SRDF named state of the arm that reset moves to
    gripper_group: str = "hand"
    gripper_open_state: str = "open"  # SRDF named states of the gripper group
    gripper_closed_state: str = "close"
    gripper_joints: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")  # published, m
    planning_pipeline: str = "pilz_industrial_motion_planner"
    step_planner_id: str = "LIN"  # straight end-effector line per step: stays in the (convex) workspace box
    named_planner_id: str = "PTP"  # reset and gripper motions
    planning_time: float = 1.0  # s per plan
    ik_timeout: float = 0.05  # s per IK query
    max_velocity_scaling: float = 0.1  # fraction of the joint velocity limits
    max_acceleration_scaling: float = 0.1  # fraction of the joint acceleration limits
    control_freq: float = 20.0  # Hz, the policy's nominal rate; each step blocks until MoveIt executed it
    instruction: str = ""  # the task's instruction for reset ("" = the episode goal's)

    def __post_init__(self):
        for name in ("max_velocity_scaling", "max_acceleration_scaling"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"moveit.{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("planning_time", "ik_timeout", "control_freq"):
            if not getattr(self, name) > 0:
                raise ValueError(f"moveit.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Reading:
    """The robot now: arm joints [rad], gripper joints [m], end-effector pose in the planning frame."""

    joint_names: tuple[str, ...]
    joint_pos: np.ndarray
    gripper_pos: np.ndarray
    eef_pos: np.ndarray  # (3,) m
    eef_quat_xyzw: np.ndarray  # (4,)


class MoveItClient(ABC):
    """What MoveItArm needs from MoveIt. Poses are in ``planning_frame``; joint vectors follow
    ``Reading.joint_names``. Motions block until executed and raise MoveItError on failure."""

    planning_frame: str

    @abstractmethod
    def read(self) -> Reading:
        """The current state (from the planning scene monitor)."""

    @abstractmethod
    def solve_ik(self, position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray | None:
        """Arm joints that put the end-effector link at the pose, seeded from the current joints;
        None when there is no solution."""

    @abstractmethod
    def in_collision(self, joint_pos: np.ndarray) -> bool:
        """Whether the arm at these joints collides with the planning scene or itself."""

    @abstractmethod
    def move_arm(self, joint_pos: np.ndarray) -> None:
        """Plan from the current state to these joints (the step planner) and execute."""

    @abstractmethod
    def move_named(self, group: str, state: str) -> None:
        """Plan a group to an SRDF named state (the named planner) and execute."""

    @abstractmethod
    def stop(self) -> None:
        """Stop any executing trajectory; the controllers hold the arm."""

    def close(self) -> None:
        """Release MoveIt."""


class MoveItPyClient(MoveItClient):
    """MoveIt 2 in this process through moveit_py (ROS 2 Jazzy: ``ros-jazzy-moveit-py``)."""

    def __init__(self, config: MoveItArmConfig):
        try:
            from moveit.planning import MoveItPy, PlanRequestParameters
            from moveit_configs_utils import MoveItConfigsBuilder
        except ImportError as error:
            raise MoveItError(
                f"moveit_py is not available ({error}): the MoveIt arm backend needs ROS 2 Jazzy with "
                "ros-jazzy-moveit-py (apt), as in the docker/robot.Dockerfile image"
            ) from None
        self.config = config
        builder = MoveItConfigsBuilder(config.robot_name, package_name=config.moveit_config_package)
        moveit_config = builder.moveit_cpp(config.moveit_cpp_file).to_moveit_configs()
        self.moveit = MoveItPy(node_name=MOVEIT_NODE_NAME, config_dict=moveit_config.to_dict())
        self.monitor = self.moveit.get_planning_scene_monitor()
        # Jazzy releases before the 2024 rename spell it "trajactory" (moveit2#2947).
        manager = getattr(self.moveit, "get_trajectory_execution_manager", None)
        self.execution = (manager or self.moveit.get_trajactory_execution_manager)()
        group = self.moveit.get_robot_model().get_joint_model_group(config.group)
        if group is None:
            raise MoveItError(f"the robot model has no planning group {config.group!r}")
        self.joint_names = tuple(group.active_joint_model_names)
        self.components = {g: self.moveit.get_planning_component(g) for g in (config.group, config.gripper_group)}
        # Every field is set in _plan_parameters; none is read from MoveItCpp's parameters.
        self.step_params = self._plan_parameters(PlanRequestParameters(self.moveit, ""), config.step_planner_id)
        self.named_params = self._plan_parameters(PlanRequestParameters(self.moveit, ""), config.named_planner_id)
        with self.monitor.read_only() as scene:
            self.planning_frame = scene.planning_frame

    def _plan_parameters(self, params, planner_id: str):
        params.planning_pipeline = self.config.planning_pipeline
        params.planner_id = planner_id
        params.planning_time = self.config.planning_time
        params.planning_attempts = 1
        params.max_velocity_scaling_factor = self.config.max_velocity_scaling
        params.max_acceleration_scaling_factor = self.config.max_acceleration_scaling
        return params

    def _current_state(self):
        with self.monitor.read_only() as scene:
            state = copy.copy(scene.current_state)
        state.update()
        return state

    def _arm_joints(self, state) -> np.ndarray:
        positions = state.joint_positions
        return np.array([positions[name] for name in self.joint_names])

    def read(self) -> Reading:
        state = self._current_state()
        pose = state.get_pose(self.config.ee_link)
        positions = state.joint_positions
        return Reading(
            joint_names=self.joint_names,
            joint_pos=self._arm_joints(state),
            gripper_pos=np.array([positions[name] for name in self.config.gripper_joints]),
            eef_pos=np.array([pose.position.x, pose.position.y, pose.position.z]),
            eef_quat_xyzw=np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]),
        )

    def solve_ik(self, position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray | None:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat_xyzw)
        state = self._current_state()
        if not state.set_from_ik(self.config.group, pose, self.config.ee_link, self.config.ik_timeout):
            return None
        return self._arm_joints(state)

    def _state_at(self, joint_pos: np.ndarray):
        """The current state with the arm at ``joint_pos``."""
        state = self._current_state()
        state.joint_positions = {name: float(v) for name, v in zip(self.joint_names, joint_pos, strict=True)}
        state.update()
        return state

    def in_collision(self, joint_pos: np.ndarray) -> bool:
        state = self._state_at(joint_pos)
        with self.monitor.read_only() as scene:
            return bool(scene.is_state_colliding(robot_state=state, joint_model_group_name=self.config.group))

    def move_arm(self, joint_pos: np.ndarray) -> None:
        goal = self._state_at(joint_pos)
        component = self.components[self.config.group]
        component.set_start_state_to_current_state()
        component.set_goal_state(robot_state=goal)
        self._plan_and_execute(component, self.step_params)

    def move_named(self, group: str, state: str) -> None:
        component = self.components[group]
        component.set_start_state_to_current_state()
        component.set_goal_state(configuration_name=state)
        self._plan_and_execute(component, self.named_params)

    def _plan_and_execute(self, component, params) -> None:
        plan = component.plan(single_plan_parameters=params)
        if not plan:
            raise MoveItError(f"MoveIt found no {params.planner_id} plan for group {component.planning_group_name}")
        status = self.moveit.execute(plan.trajectory, controllers=[])
        if not status:
            raise MoveItError(f"executing the {component.planning_group_name} trajectory failed: {status.status}")

    def stop(self) -> None:
        self.execution.stop_execution()

    def close(self) -> None:
        self.moveit.shutdown()


def quat_from_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (xyzw) of the rotation vector ``rotation`` (axis * angle, rad)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    angle = float(np.linalg.norm(rotation))
    # sin(angle / 2) / angle, finite at 0
    return np.concatenate([rotation * 0.5 * np.sinc(angle / (2 * np.pi)), [np.cos(angle / 2)]])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of xyzw quaternions (rotate by b, then by a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def delta_target(
    position: np.ndarray, quat_xyzw: np.ndarray, action: np.ndarray, action_scale: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The end-effector pose one OSC_POSE delta action away, as robosuite computes it.

    Translation: position + action[:3] * action_scale[0] (m). Rotation: the axis-angle
    action[3:6] * action_scale[1] (rad) about the base frame's axes, applied on the left
    (R_target = R_delta @ R_now). Both in the base frame.
    """
    action = np.asarray(action, dtype=np.float64)
    target_position = np.asarray(position, dtype=np.float64) + action[:3] * action_scale[0]
    target_quat = quat_multiply(quat_from_axis_angle(action[3:6] * action_scale[1]), quat_xyzw)
    return target_position, target_quat / np.linalg.norm(target_quat)


class MoveItArm(Arm):
    """A physical arm driven by MoveIt: every step is checked against the planning scene before it moves.

    Per step: the target pose (``delta_target``) must have an IK solution and be collision-free, else
    ``apply`` raises ChunkRefused and the arm does not move. The gripper is binary: action[6] > 0
    closes (the gripper group's closed named state), otherwise it opens, as robosuite's Panda gripper.
    """

    is_real_hardware = True

    def __init__(self, config: MoveItArmConfig, client: MoveItClient):
        if client.planning_frame != config.base_frame:
            raise MoveItError(
                f"MoveIt plans in {client.planning_frame!r} but moveit.base_frame is {config.base_frame!r}: "
                "poses and deltas must be in the planning frame"
            )
        self.config = config
        self.client = client
        self.frame_id = config.base_frame
        self._state: ArmState | None = None
        self._gripper_closed = False

    def reset(self, task: str, seed: int, init_state_id: int) -> EpisodeStart:
        """Open the gripper and move the arm to ``home_state``; the operator sets up the scene, so
        ``task``, ``seed`` and ``init_state_id`` are not used. Raises MoveItError."""
        self.client.move_named(self.config.gripper_group, self.config.gripper_open_state)
        self._gripper_closed = False
        self.client.move_named(self.config.group, self.config.home_state)
        self._state = self._read(step=0)
        return EpisodeStart(self._state, self.config.instruction)

    def apply(self, action: np.ndarray) -> ArmState:
        """One safe (7,) action; see ``delta_target``. Raises ChunkRefused when the target is unreachable
        or colliding (no motion) or when MoveIt fails to plan or execute it."""
        now = self._state
        position, quat = delta_target(now.eef_pos, now.eef_quat_xyzw, action, self.action_scale)
        translation = np.linalg.norm(action[:3]) * self.action_scale[0]
        rotation = np.linalg.norm(action[3:6]) * self.action_scale[1]
        if max(translation, rotation) > MIN_MOTION:
            self._move_to(position, quat)
        closed = bool(action[6] > 0)
        if closed != self._gripper_closed:
            named = self.config.gripper_closed_state if closed else self.config.gripper_open_state
            self._run(self.client.move_named, self.config.gripper_group, named)
            self._gripper_closed = closed
        self._state = self._read(step=now.step + 1)
        return self._state

    def _move_to(self, position: np.ndarray, quat: np.ndarray) -> None:
        target = f"target {np.round(position, 3)} m, quaternion {np.round(quat, 3)} in {self.frame_id}"
        joints = self.client.solve_ik(position, quat)
        if joints is None:
            raise ChunkRefused(Intervention("unreachable", f"{target}: no IK solution for {self.config.ee_link}", True))
        if self.client.in_collision(joints):
            raise ChunkRefused(Intervention("collision", f"{target}: in collision with the planning scene", True))
        self._run(self.client.move_arm, joints)

    @staticmethod
    def _run(motion, *args) -> None:
        try:
            motion(*args)
        except MoveItError as error:
            raise ChunkRefused(Intervention("motion_failed", str(error), True)) from error

    def _read(self, step: int) -> ArmState:
        reading = self.client.read()
        return ArmState(
            stamp_ns=time.time_ns(),
            step=step,
            eef_pos=reading.eef_pos,
            eef_quat_xyzw=reading.eef_quat_xyzw,
            joint_names=list(reading.joint_names),
            joint_pos=reading.joint_pos,
            gripper_qpos=reading.gripper_pos,
            gripper_joint_names=self.config.gripper_joints,
        )

    def hold(self) -> None:
        self.client.stop()

    @property
    def state(self) -> ArmState | None:
        return self._state

    @property
    def control_period(self) -> float:
        return 1.0 / self.config.control_freq

    def close(self) -> None:
        self.client.close()
