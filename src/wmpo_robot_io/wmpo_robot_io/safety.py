"""The safety filter in front of every arm backend.

Actions follow the OSC_POSE convention (see ActionChunk.msg): 7 values per step,
[dx dy dz] and [ax ay az] in controller units, gripper in [-1, 1]. ``action_scale`` converts
controller units to metres and radians. Positions are in the arm's base/world frame.

Contract: ``check_chunk`` refuses a whole chunk (no motion at all) when it cannot be made safe
(wrong shape, NaN/inf, e-stop latched, stale observations, stale chunk). ``filter_step`` makes one
action safe by clipping (per-step translation and rotation, gripper range, workspace box). Every
change is returned as an Intervention; nothing is changed silently.
"""

from dataclasses import dataclass

import numpy as np

from wmpo_common.actions import ACTION_DIM

TOLERANCE = 1e-6  # relative: a step at exactly the limit (up to rounding) is not an intervention


@dataclass(frozen=True)
class SafetyLimits:
    """Limits in physical units. All fields are required on real hardware."""

    workspace_min: tuple[float, float, float]  # m, end-effector box, base frame
    workspace_max: tuple[float, float, float]  # m
    max_translation_per_step: float  # m
    max_rotation_per_step: float  # rad
    gripper_min: float = -1.0
    gripper_max: float = 1.0
    observation_timeout: float = 1.0  # s without a camera frame before the arm holds
    max_chunk_age: float = 2.0  # s between a chunk's observation and its execution

    def __post_init__(self):
        lo, hi = np.asarray(self.workspace_min), np.asarray(self.workspace_max)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(lo < hi):
            raise ValueError(f"workspace box must be 3 values with min < max, got {lo} .. {hi}")
        positive = {
            "max_translation_per_step": self.max_translation_per_step,
            "max_rotation_per_step": self.max_rotation_per_step,
            "observation_timeout": self.observation_timeout,
            "max_chunk_age": self.max_chunk_age,
        }
        for name, value in positive.items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"safety limit {name} must be a positive number, got {value}")
        if not self.gripper_min < self.gripper_max:
            raise ValueError("gripper_min must be below gripper_max")


@dataclass(frozen=True)
class Intervention:
    """One change or refusal made by the filter. ``refused`` means no motion was allowed."""

    kind: str  # e.g. "non_finite", "workspace", "translation_limit", "estop", "stale_observation"
    message: str
    refused: bool = False


class ChunkRefused(Exception):
    """A chunk (or its rest) that must not be executed; ``intervention`` says why. Raised by the filter
    and by arm backends that refuse a step."""

    def __init__(self, intervention: Intervention):
        super().__init__(intervention.message)
        self.intervention = intervention


class SafetyFilter:
    """Stateful filter: holds the latched e-stop and the watchdog clocks (seconds, monotonic)."""

    def __init__(self, limits: SafetyLimits, action_scale: tuple[float, float]):
        self.limits = limits
        self.translation_scale, self.rotation_scale = action_scale
        self.estop_latched = False
        self.estop_reason = ""
        self._last_observation_time: float | None = None
        self._last_motion_end: float | None = None

    # -- e-stop and watchdog -----------------------------------------------------------------
    def latch_estop(self, reason: str) -> None:
        self.estop_latched = True
        self.estop_reason = reason

    def release_estop(self) -> None:
        self.estop_latched = False
        self.estop_reason = ""

    def observation_received(self, now: float) -> None:
        self._last_observation_time = now

    def motion_finished(self, now: float) -> None:
        """Mark the end of a motion (or a reset). The watchdog counts camera silence from the later
        of the newest frame and this moment: a simulator renders only when it steps, and an idle
        arm cannot move blind. A hardware camera keeps streaming, so the newest frame decides."""
        self._last_motion_end = now

    # -- checks ------------------------------------------------------------------------------
    def check_chunk(self, actions: np.ndarray, now: float, chunk_age: float) -> np.ndarray:
        """Validate a whole chunk before any of it runs; return it as a (K, 7) float64 array.

        ``now``: monotonic seconds; ``chunk_age``: seconds since the chunk's observation.
        Raises ChunkRefused.
        """
        if self.estop_latched:
            raise ChunkRefused(Intervention("estop", f"e-stop latched ({self.estop_reason})", True))
        limits = self.limits
        if self._last_observation_time is None:
            raise ChunkRefused(Intervention("stale_observation", "no camera frame received yet", True))
        silence = now - max(self._last_observation_time, self._last_motion_end or 0.0)
        if silence > limits.observation_timeout:
            raise ChunkRefused(
                Intervention(
                    "stale_observation",
                    f"last camera frame {silence:.2f} s ago > observation_timeout {limits.observation_timeout} s",
                    True,
                )
            )
        if chunk_age > limits.max_chunk_age:
            raise ChunkRefused(
                Intervention(
                    "stale_chunk", f"chunk is {chunk_age:.2f} s old > max_chunk_age {limits.max_chunk_age} s", True
                )
            )
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or actions.shape[0] == 0:
            raise ChunkRefused(
                Intervention("bad_shape", f"chunk must be (K>0, {ACTION_DIM}), got {actions.shape}", True)
            )
        bad = np.argwhere(~np.isfinite(actions))
        if len(bad):
            step, dim = bad[0]
            raise ChunkRefused(
                Intervention(
                    "non_finite",
                    f"{len(bad)} non-finite value(s) in chunk, first at step {step} dim {dim}: {actions[step, dim]}",
                    True,
                )
            )
        return actions

    def filter_step(self, action: np.ndarray, eef_position: np.ndarray) -> tuple[np.ndarray, list[Intervention]]:
        """Make one finite action safe given the current end-effector position (m)."""
        limits = self.limits
        out = np.array(action, dtype=np.float64)
        events: list[Intervention] = []

        # Workspace first, then the step limit: the box is convex, so scaling a step that ends
        # inside it towards the current position keeps it inside.
        position = np.asarray(eef_position, dtype=np.float64)
        target = position + out[:3] * self.translation_scale
        clipped = np.clip(target, limits.workspace_min, limits.workspace_max)
        if not np.allclose(clipped, target):
            axes = "".join("xyz"[i] for i in np.flatnonzero(~np.isclose(clipped, target)))
            events.append(
                Intervention("workspace", f"target {np.round(target, 3)} outside the workspace box on {axes}")
            )
        delta = clipped - position
        norm = float(np.linalg.norm(delta))
        if norm > limits.max_translation_per_step * (1 + TOLERANCE):
            delta *= limits.max_translation_per_step / norm
            events.append(
                Intervention(
                    "translation_limit",
                    f"translation {norm * 1000:.1f} mm/step scaled to {limits.max_translation_per_step * 1000:.1f}",
                )
            )
        out[:3] = delta / self.translation_scale

        rotation = out[3:6] * self.rotation_scale
        angle = float(np.linalg.norm(rotation))
        if angle > limits.max_rotation_per_step * (1 + TOLERANCE):
            out[3:6] *= limits.max_rotation_per_step / angle
            events.append(
                Intervention(
                    "rotation_limit", f"rotation {angle:.3f} rad/step scaled to {limits.max_rotation_per_step:.3f}"
                )
            )

        gripper = float(np.clip(out[6], limits.gripper_min, limits.gripper_max))
        if gripper != out[6]:
            events.append(
                Intervention(
                    "gripper_range", f"gripper {out[6]:.3f} clipped to [{limits.gripper_min}, {limits.gripper_max}]"
                )
            )
            out[6] = gripper
        return out, events
