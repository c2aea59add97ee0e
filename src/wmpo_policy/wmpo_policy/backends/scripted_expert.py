"""Scripted experts for Lift and NutAssemblySquare, acting from privileged simulator state.

This is how the project makes its own demonstrations with no downloads. Each expert is a small
phase machine over waypoints; a chunk of K actions is planned open loop by integrating the
commanded deltas on a predicted end-effector position (the arm executes chunks open loop).
"""

import math

import numpy as np

from wmpo_common.actions import ACTION_DIM, ACTION_SCALE, CHUNK_HORIZON
from wmpo_policy.backends.base import Observation, PolicyBackend, PrivilegedState, register_backend

TRANSLATION_SCALE, ROTATION_SCALE = ACTION_SCALE  # m and rad per unit action (robosuite OSC_POSE)
TRACKING = 0.6  # fraction of a commanded delta the controller achieves in one step (planning model)
OPEN, CLOSE = -1.0, 1.0


def yaw_of(quat_xyzw: np.ndarray) -> float:
    """Heading of the body's x axis in the world xy plane [rad]."""
    x, y, z, w = quat_xyzw
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def wrap(angle: float, period: float = 2 * math.pi) -> float:
    """Wrap to [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


class Planner:
    """Chunk planner: move towards a target position/yaw with a gripper command."""

    def __init__(self, state: PrivilegedState):
        self.position = np.array(state.eef_position, dtype=np.float64)
        self.actions: list[np.ndarray] = []

    def move(self, target: np.ndarray, gripper: float, yaw_error: float = 0.0, steps: int = 1, speed: float = 1.0):
        for _ in range(steps):
            if len(self.actions) == CHUNK_HORIZON:
                return
            action = np.zeros(ACTION_DIM)
            # Limit the step's length (not each axis): the safety filter caps it at 1 unit too.
            step = (target - self.position) / TRANSLATION_SCALE
            length = np.linalg.norm(step)
            action[:3] = step * min(1.0, speed / length) if length > 0 else 0.0
            action[5] = np.clip(yaw_error / ROTATION_SCALE, -0.4, 0.4)
            yaw_error -= action[5] * ROTATION_SCALE * TRACKING
            action[6] = gripper
            self.position = self.position + action[:3] * TRANSLATION_SCALE * TRACKING
            self.actions.append(action)

    def chunk(self, fill_gripper: float) -> np.ndarray:
        while len(self.actions) < CHUNK_HORIZON:
            self.move(self.position, fill_gripper)
        return np.stack(self.actions)


class LiftExpert:
    """Above the cube -> down -> close -> up. Retries if the cube slips."""

    def __init__(self):
        self.phase = "approach"
        self.grasp_steps = 0

    def plan(self, s: PrivilegedState) -> np.ndarray:
        cube = s.objects["cube_main"].position
        eef = s.eef_position
        planner = Planner(s)
        if self.phase == "lift" and eef[2] - cube[2] > 0.04:  # the cube slipped out: try again
            self.phase = "approach"
        if self.phase == "approach":
            above = cube + [0, 0, 0.08]
            if np.linalg.norm(eef[:2] - cube[:2]) < 0.01 and abs(eef[2] - above[2]) < 0.03:
                self.phase = "descend"
            else:
                planner.move(above, OPEN, steps=CHUNK_HORIZON)
                return planner.chunk(OPEN)
        if self.phase == "descend":
            grasp = cube + [0, 0, -0.005]
            if eef[2] - grasp[2] < 0.012:
                self.phase, self.grasp_steps = "grasp", 0
            else:
                planner.move(grasp, OPEN, steps=CHUNK_HORIZON, speed=0.6)
                return planner.chunk(OPEN)
        if self.phase == "grasp":
            planner.move(planner.position, CLOSE, steps=CHUNK_HORIZON)
            self.phase = "lift"
            return planner.chunk(CLOSE)
        planner.move(cube + [0, 0, 0.25], CLOSE, steps=CHUNK_HORIZON, speed=0.6)
        return planner.chunk(CLOSE)


class SquareExpert:
    """Grasp the square nut's handle, carry it over the peg squared up with it, lower it, let go.

    The square hole leaves ~7 mm of clearance around the peg only when the nut is turned square to
    it, so the nut is turned to the nearest multiple of 90 degrees while it is carried.
    """

    # The handle sticks out along the nut's x axis, 0.044-0.079 m from its centre (inside that is the
    # nut's wall, which the fingers would land on): grasp it in the middle.
    HANDLE_OFFSET = 0.062
    CARRY_HEIGHT = 1.02  # m, eef height at which the held nut clears the peg's top (0.95 m)
    ON_PEG_HEIGHT = 0.07  # m above the peg's origin: the nut's centre is below the peg's top, let go
    # This arm covers only ~40% of the motion Planner's TRACKING model predicts within a chunk (and
    # ~1/3 of the turn), so targets are pushed out by these gains; each chunk re-plans from the state.
    GAIN, YAW_GAIN = 2.0, 3.0
    # Descend once this close to the handle (table plane) and to across it, and keep correcting on
    # the way down. The grasp tolerates about 1-2 cm and 10 degrees (bench/square_grasp_tolerance.py);
    # a trigger no tighter than that keeps the decision to descend within what a policy can see.
    DESCEND_RADIUS, DESCEND_YAW = 0.012, 0.15  # m, rad
    ABORT_RADIUS = 0.025  # m: pushed or drifted off the handle while descending, start over

    def __init__(self):
        self.phase = "approach"

    def move(
        self,
        planner: Planner,
        eef: np.ndarray,
        target: np.ndarray,
        gripper: float,
        yaw_error: float = 0.0,
        speed: float = 1.0,
    ) -> np.ndarray:
        """One chunk towards ``target`` (and turning by ``yaw_error``), with the gains applied."""
        planner.move(eef + self.GAIN * (target - eef), gripper, self.YAW_GAIN * yaw_error, CHUNK_HORIZON, speed)
        return planner.chunk(gripper)

    def plan(self, s: PrivilegedState) -> np.ndarray:
        nut = s.objects["SquareNut_main"]
        peg = s.objects["peg1"].position
        nut_yaw = yaw_of(nut.quat_xyzw)
        handle = nut.position + self.HANDLE_OFFSET * np.array([math.cos(nut_yaw), math.sin(nut_yaw), 0.0])
        eef = s.eef_position
        planner = Planner(s)
        if self.phase in ("carry", "lower") and eef[2] - handle[2] > 0.04:  # dropped: start over
            self.phase = "approach"
        # The fingers close along the gripper's x axis: turn it across the handle (pi-symmetric).
        grip_yaw_error = wrap(nut_yaw + math.pi / 2 - yaw_of(s.eef_quat_xyzw), math.pi)
        if self.phase == "approach":
            above = handle + [0, 0, 0.05]
            if (
                np.linalg.norm(eef[:2] - handle[:2]) < self.DESCEND_RADIUS
                and abs(eef[2] - above[2]) < 0.03
                and abs(grip_yaw_error) < self.DESCEND_YAW
            ):
                self.phase = "descend"
            else:
                return self.move(planner, eef, above, OPEN, grip_yaw_error)
        if self.phase == "descend":
            if np.linalg.norm(eef[:2] - handle[:2]) > self.ABORT_RADIUS:
                self.phase = "approach"
                return self.move(planner, eef, handle + [0, 0, 0.05], OPEN)
            if eef[2] - handle[2] < 0.006:  # the fingertips stop on the table at about handle height
                self.phase = "grasp"
            else:
                return self.move(planner, eef, handle + [0, 0, -0.005], OPEN, grip_yaw_error, speed=0.6)
        if self.phase == "grasp":
            self.phase = "lift"
            return self.move(planner, eef, eef, CLOSE)
        if self.phase == "lift":
            if eef[2] > self.CARRY_HEIGHT - 0.02:
                self.phase = "carry"
            else:
                return self.move(planner, eef, np.array([eef[0], eef[1], self.CARRY_HEIGHT]), CLOSE)
        # Turn the nut (with the gripper) square to the peg, and put its centre over the peg: the eef
        # holds the handle, whose offset from the centre turns with it.
        turn = wrap(-nut_yaw, math.pi / 2)
        cos_t, sin_t = math.cos(turn), math.sin(turn)
        dx, dy = eef[:2] - nut.position[:2]
        over_peg = np.array([peg[0] + cos_t * dx - sin_t * dy, peg[1] + sin_t * dx + cos_t * dy, self.CARRY_HEIGHT])
        if self.phase == "carry":
            if np.linalg.norm(nut.position[:2] - peg[:2]) < 0.005 and abs(turn) < 0.08:
                self.phase = "lower"
            else:
                return self.move(planner, eef, over_peg, CLOSE, turn)
        if self.phase == "lower":
            if nut.position[2] < peg[2] + self.ON_PEG_HEIGHT:
                self.phase = "release"
            else:
                return self.move(planner, eef, np.array([over_peg[0], over_peg[1], eef[2] - 0.03]), CLOSE, turn)
        return self.move(planner, eef, eef + [0, 0, 0.03], OPEN)


EXPERTS = {"Lift": LiftExpert, "NutAssemblySquare": SquareExpert}


@register_backend("scripted_expert")
class ScriptedExpert(PolicyBackend):
    """Waypoint experts reading privileged simulator state (TaskState). Simulation only."""

    needs_privileged_state = True

    def __init__(self):
        self._expert = None
        self._task = ""

    @property
    def policy_id(self) -> str:
        return f"scripted_expert/{self._task or 'none'}"

    def reset(self, sampling_seed: int | None = None) -> None:
        self._expert = None  # deterministic: nothing to seed

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        state = observation.privileged
        if state is None:
            raise ValueError("the scripted expert needs the simulator's TaskState (sim/task_state)")
        if state.task not in EXPERTS:
            raise ValueError(f"no scripted expert for task {state.task!r}; known: {', '.join(EXPERTS)}")
        if self._expert is None or state.task != self._task or state.step == 0:
            self._expert, self._task = EXPERTS[state.task](), state.task
        return self._expert.plan(state).astype(np.float32)
