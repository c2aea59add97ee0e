"""The policy backend contract and its registry (LeRobot-style: a config dataclass per backend)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjectPose:
    position: np.ndarray  # (3,) m, world frame
    quat_xyzw: np.ndarray  # (4,)


@dataclass
class PrivilegedState:
    """Simulator-only state (TaskState.msg), for scripted experts."""

    task: str
    step: int
    eef_position: np.ndarray  # (3,) m
    eef_quat_xyzw: np.ndarray  # (4,)
    gripper_opening: float  # m
    objects: dict[str, ObjectPose] = field(default_factory=dict)


@dataclass
class Observation:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    instruction: str
    stamp_ns: int
    privileged: PrivilegedState | None = None  # only in simulation


class PolicyBackend(ABC):
    """Maps one observation to one chunk of K actions in controller units, shape (K, 7)."""

    #: True if the backend needs PrivilegedState (a scripted expert); refused on a real robot.
    needs_privileged_state = False

    @property
    @abstractmethod
    def policy_id(self) -> str:
        """Identifies the checkpoint or program producing the actions (recorded in every bag)."""

    @property
    def normalization_id(self) -> str:
        """Id of the action statistics used to de-normalise ("" when actions are not normalised)."""
        return ""

    @abstractmethod
    def predict_chunk(self, observation: Observation) -> np.ndarray:
        """Return a (K, 7) float array of actions for the observation."""

    def reset(self, sampling_seed: int | None = None) -> None:
        """Forget per-episode state (called at the start of each episode). A backend that samples
        restarts its sampling from ``sampling_seed`` when one is given (the same seed, the same
        draws, whatever ran before), else keeps drawing from where it was."""


BACKENDS: dict[str, type[PolicyBackend]] = {}


def register_backend(name: str):
    def decorator(cls):
        BACKENDS[name] = cls
        return cls

    return decorator


def make_backend(name: str, **options) -> PolicyBackend:
    """Build a registered backend; raise ValueError naming the known ones."""
    if name not in BACKENDS:
        raise ValueError(f"unknown policy backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](**options)
