"""The simulated Panda arm on robosuite (OSC_POSE), sharing a SimWorld with the sim camera."""

import numpy as np

from wmpo_robot_io.arms.base import Arm, ArmState, EpisodeStart
from wmpo_robot_io.safety import SafetyLimits
from wmpo_robot_io.sim.tasks import task_spec
from wmpo_robot_io.sim.world import SimStep, SimWorld


def arm_state(step: SimStep) -> ArmState:
    return ArmState(
        stamp_ns=step.stamp_ns,
        step=step.step,
        eef_pos=step.eef_pos,
        eef_quat_xyzw=step.eef_quat_xyzw,
        joint_names=step.joint_names,
        joint_pos=step.joint_pos,
        gripper_qpos=step.gripper_qpos,
        success=step.success,
        objects=step.object_poses,
    )


class SimArm(Arm):
    is_real_hardware = False
    action_scale = SimWorld.action_scale
    frame_id = "world"

    def __init__(self, world: SimWorld):
        self.world = world

    def reset(self, task: str, seed: int, init_state_id: int) -> EpisodeStart:
        spec = task_spec(task)
        step = self.world.reset(task, seed, init_state_id)
        return EpisodeStart(arm_state(step), spec.instruction, spec.max_steps)

    def apply(self, action: np.ndarray) -> ArmState:
        return arm_state(self.world.step(action))

    def hold(self) -> None:
        """The simulation is paused between steps: holding is not stepping."""

    @property
    def task_name(self) -> str:
        return self.world.task_name

    @property
    def state(self) -> ArmState | None:
        last = self.world.last
        return None if last is None else arm_state(last)

    @property
    def control_period(self) -> float:
        return 1.0 / self.world.config.control_freq

    def default_limits(self) -> SafetyLimits:
        # The table top is at z = 0.80 m in robosuite's world frame; the box keeps the gripper
        # above it and within the Panda's comfortable reach in front of its base at x = -0.56.
        return SafetyLimits(
            workspace_min=(-0.40, -0.40, 0.805),
            workspace_max=(0.38, 0.40, 1.35),
            max_translation_per_step=0.05,
            max_rotation_per_step=0.5,
        )

    def close(self) -> None:
        self.world.close()
