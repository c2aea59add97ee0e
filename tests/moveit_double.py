"""A kinematic stand-in for MoveIt behind the real ``MoveItClient`` interface (no MoveIt or arm here).

The "arm" is a gantry whose seven joints are the end-effector pose itself ([x y z] m, [qx qy qz qw]):
IK succeeds inside a reachable box, a box obstacle collides, and motions happen at once.
"""

import numpy as np

from wmpo_robot_io.arms.moveit_arm import MoveItClient, MoveItError, Reading

JOINTS = ("x", "y", "z", "qx", "qy", "qz", "qw")
HOME = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])  # gripper pointing down (180 deg about x)
GRIPPER = {"open": np.array([0.04, 0.04]), "close": np.array([0.0, 0.0])}  # finger joints, m


class MoveItDouble(MoveItClient):
    """Named states as MoveItArmConfig's defaults: panda_arm "ready" (HOME), hand "open" / "close"."""

    def __init__(
        self,
        planning_frame: str = "world",
        reachable: tuple[tuple[float, ...], tuple[float, ...]] = ((0.0, -0.6, 0.0), (0.6, 0.6, 0.8)),
        obstacle: tuple[tuple[float, ...], tuple[float, ...]] = ((0.3, 0.2, 0.0), (0.4, 0.3, 0.25)),
    ):
        self.planning_frame = planning_frame
        self.reachable = np.array(reachable)  # m, min and max corners
        self.obstacle = np.array(obstacle)
        self.joints = np.array([0.3, 0.0, 0.6, 0.0, 0.0, 0.0, 1.0])  # wherever the arm was left
        self.gripper = GRIPPER["close"]
        self.moves: list[np.ndarray] = []  # every executed arm joint target
        self.named: list[tuple[str, str]] = []  # every executed (group, named state)
        self.stops = 0

    def read(self) -> Reading:
        return Reading(JOINTS, self.joints.copy(), self.gripper.copy(), self.joints[:3].copy(), self.joints[3:].copy())

    def solve_ik(self, position, quat_xyzw):
        lo, hi = self.reachable
        if np.any(position < lo) or np.any(position > hi):
            return None
        return np.concatenate([position, quat_xyzw])

    def in_collision(self, joint_pos) -> bool:
        lo, hi = self.obstacle
        return bool(np.all(joint_pos[:3] >= lo) and np.all(joint_pos[:3] <= hi))

    def move_arm(self, joint_pos) -> None:
        self.moves.append(np.array(joint_pos))
        self.joints = np.array(joint_pos)

    def move_named(self, group: str, state: str) -> None:
        if (group, state) == ("panda_arm", "ready"):
            self.joints = HOME.copy()
        elif group == "hand" and state in GRIPPER:
            self.gripper = GRIPPER[state]
        else:
            raise MoveItError(f"no named state {state!r} for group {group!r}")
        self.named.append((group, state))

    def stop(self) -> None:
        self.stops += 1
