"""The arm backend contract, shared by the simulated arm and hardware arms."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from wmpo_common.actions import ACTION_SCALE
from wmpo_robot_io.safety import SafetyLimits


@dataclass
class ArmState:
    """The arm after a reset or a step. Positions in metres, base/world frame, quaternions xyzw."""

    stamp_ns: int
    step: int  # control steps since reset
    eef_pos: np.ndarray  # (3,)
    eef_quat_xyzw: np.ndarray  # (4,)
    joint_names: list[str]
    joint_pos: np.ndarray  # rad
    gripper_qpos: np.ndarray  # finger joint positions, m
    success: bool | None = None  # the task's success predicate, None where the backend cannot know
    objects: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # sim only
    gripper_joint_names: tuple[str, ...] = ("finger_joint1", "finger_joint2")  # of gripper_qpos


@dataclass(frozen=True)
class EpisodeStart:
    """What a reset returns: the first state and what the backend knows of the task."""

    state: ArmState
    instruction: str = ""
    default_max_steps: int = 0


class Arm(ABC):
    """An arm that executes 7-D OSC_POSE delta actions (see ActionChunk.msg), one per step.

    Implementations never see unfiltered actions: the arm node applies the SafetyFilter first.
    """

    #: True for physical arms: the node then refuses to start without explicit safety limits.
    is_real_hardware: bool = True
    #: (metres, radians) per unit of the translation and rotation action components.
    action_scale: tuple[float, float] = ACTION_SCALE
    #: Frame of positions and deltas (REP-103: x forward, y left, z up).
    frame_id: str = "world"

    @abstractmethod
    def reset(self, task: str, seed: int, init_state_id: int) -> EpisodeStart:
        """Bring the arm (and a simulated scene) to the start of an episode."""

    @abstractmethod
    def apply(self, action: np.ndarray) -> ArmState:
        """Apply one safe (7,) action for one control step; return the state after it.

        Raises ChunkRefused when the backend refuses or fails the step (e.g. an unreachable target);
        the node then holds the arm and aborts the chunk.
        """

    @abstractmethod
    def hold(self) -> None:
        """Stop and hold the current pose (called on e-stop, watchdog and cancel)."""

    @property
    @abstractmethod
    def state(self) -> ArmState | None:
        """The latest state, or None before the first reset."""

    @property
    @abstractmethod
    def control_period(self) -> float:
        """Seconds per control step."""

    def default_limits(self) -> SafetyLimits | None:
        """Limits to use when none are configured; hardware backends return None."""
        return None

    def close(self) -> None:
        """Release the backend's resources."""
